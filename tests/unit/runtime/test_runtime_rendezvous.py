"""What a member does with the members a rendezvous hands it: which it seeds gossip
with, how often, and where it dials them; reading rendezvous answers; and a member's
registration at its control plane (answers and failures, behind httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reconciler.certs.identity import NodeIdentity
from reconciler.certs.root import PoolRoot, create_pool_root
from reconciler.drivers.netif import Interface
from reconciler.drivers.tls import TlsFiles
from reconciler.relay.messages import PeerEntry, Register
from reconciler.runtime import rendezvous
from reconciler.runtime.rendezvous import (
    RESEED_SECONDS,
    ControlPlaneRendezvous,
    Seeds,
    entries_from_json,
    self_entry,
)

ME = "node-000000000000000a"
MemberFactory = Callable[[Path, PoolRoot, str], tuple[NodeIdentity, TlsFiles]]
LEG = [Interface("eth0", "192.0.2.5", "255.255.255.0")]


def entry(node: str, *addresses: str) -> PeerEntry:
    return PeerEntry(node, "d", addresses, 1, 1)


def test_only_plausible_unmet_members_are_seeded() -> None:
    seeds = Seeds(ME)
    entries = [
        entry(ME, "192.0.2.5:1"),  # us
        entry("node-zz", "192.0.2.6:1"),  # not a node ID
        entry("node-000000000000000b"),  # no address
        entry("node-000000000000000c", "192.0.2.7:1"),  # heard by beacon already
        entry("node-000000000000000d", "192.0.2.8:1"),  # revoked
        entry("node-000000000000000e", "198.51.100.9:7", "192.0.2.9:7"),
    ]
    picked = seeds.pick(
        entries, {"node-000000000000000c"}, lambda n: n.endswith("d"), LEG, now=100.0
    )
    assert [(e.node_id, address) for e, address in picked] == [
        ("node-000000000000000e", "192.0.2.9:7"),  # the address on our subnet
    ]
    assert seeds.met == {"node-000000000000000e"}


def test_a_member_is_seeded_again_only_after_a_while() -> None:
    seeds = Seeds(ME)
    peer = [entry("node-000000000000000e", "192.0.2.9:7")]
    assert seeds.pick(peer, (), lambda n: False, LEG, now=100.0)
    assert not seeds.pick(peer, (), lambda n: False, LEG, now=100.0 + RESEED_SECONDS / 2)
    assert seeds.pick(peer, (), lambda n: False, LEG, now=100.0 + RESEED_SECONDS)


def test_malformed_and_stale_answers_are_skipped() -> None:
    good = {"nodeId": "node-000000000000000e", "name": "e", "addresses": ["192.0.2.9:7"],
            "memoryBytes": 5, "cores": 2, "seen": 100.0}  # fmt: skip
    stale = {**good, "nodeId": "node-000000000000000f", "seen": 0.0}
    assert entries_from_json([good, {"nodeId": 1}, "junk", {"addresses": 5}]) == (
        PeerEntry("node-000000000000000e", "e", ("192.0.2.9:7",), 5, 2),
    )
    table = {"a": good, "b": stale}
    assert [e.node_id for e in entries_from_json(table, now=110.0)] == ["node-000000000000000e"]
    assert entries_from_json(None) == ()


class ControlPlane:
    """The control plane's /v1/rendezvous behind httpx.MockTransport, answering with each
    of ``answers`` in turn (the last one again and again). ``reached`` is set when request
    number ``stop_at`` comes in: registrations are sequential, so every earlier answer
    has been handled by then."""

    def __init__(self, *answers: httpx.Response | Exception, stop_at: int = 2) -> None:
        self.answers: list[httpx.Response | Exception] = list(answers)
        self.requests: list[httpx.Request] = []
        self.stop_at, self.reached = stop_at, asyncio.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) == self.stop_at:
            self.reached.set()
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def tls(tmp_path: Path, member_tls: MemberFactory) -> TlsFiles:
    root = create_pool_root(os.urandom(32), "p", time.time())
    return member_tls(tmp_path, root, "me")[1]


def _register(
    monkeypatch: pytest.MonkeyPatch, tls: TlsFiles, plane: ControlPlane
) -> tuple[ControlPlaneRendezvous, list[tuple[PeerEntry, ...]]]:
    real_client = httpx.AsyncClient
    monkeypatch.setattr(rendezvous, "REGISTER_SECONDS", 0.0)
    monkeypatch.setattr(httpx, "AsyncClient",
                        lambda **kw: real_client(transport=httpx.MockTransport(plane), **kw))  # fmt: skip
    heard: list[tuple[PeerEntry, ...]] = []
    registration = Register("me", ("192.0.2.5:7000",), 1 << 30, 4)
    cp = ControlPlaneRendezvous("cp.example:8080", "pool-1", tls, registration, heard.append)

    async def scenario() -> None:
        cp.start()
        await plane.reached.wait()
        await cp.close()

    asyncio.run(scenario())
    return cp, heard


PEER = {"nodeId": "node-000000000000000e", "name": "e", "addresses": ["192.0.2.9:7"],
        "memoryBytes": 5, "cores": 2}  # fmt: skip


def test_a_member_registers_and_hands_the_peers_it_gets_to_gossip(
    monkeypatch: pytest.MonkeyPatch, tls: TlsFiles
) -> None:
    plane = ControlPlane(httpx.Response(200, json={"peers": [PEER, {"junk": 1}]}))
    cp, heard = _register(monkeypatch, tls, plane)
    request = plane.requests[0]
    assert str(request.url) == "https://cp.example:8080/v1/rendezvous"
    assert json.loads(request.content) == {"name": "me", "addresses": ["192.0.2.5:7000"],
                                           "memoryBytes": 1 << 30, "cores": 4}  # fmt: skip
    assert request.extensions["sni_hostname"] == "pool-1"
    assert heard[0] == (PeerEntry("node-000000000000000e", "e", ("192.0.2.9:7",), 5, 2),)
    status = cp.status()
    assert (status["lastError"], status["peersHeard"]) == ("", 1)
    assert status["lastSuccess"] is not None


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(403, text="not a member"), "403 not a member"),
        (httpx.Response(200, text="<html>"), "JSONDecodeError"),
        (httpx.ConnectError("refused"), "ConnectError: refused"),
    ],
)
def test_a_failed_registration_is_recorded_and_seeds_nothing(
    monkeypatch: pytest.MonkeyPatch, tls: TlsFiles, answer: httpx.Response | Exception, error: str
) -> None:
    cp, heard = _register(monkeypatch, tls, ControlPlane(answer))
    assert heard == []
    status = cp.status()
    assert error in status["lastError"]
    assert status["lastSuccess"] is None and status["peersHeard"] == 0


def test_a_later_success_clears_the_error(monkeypatch: pytest.MonkeyPatch, tls: TlsFiles) -> None:
    plane = ControlPlane(httpx.Response(503, text="busy"), httpx.Response(200, json={"peers": []}),
                         stop_at=3)  # fmt: skip
    cp, heard = _register(monkeypatch, tls, plane)
    assert heard and all(peers == () for peers in heard)
    status = cp.status()
    assert status["lastError"] == "" and status["lastSuccess"] is not None


def test_the_admin_publishes_where_it_listens() -> None:
    registration = Register("admin", ("192.0.2.1:7000", "198.51.100.1:7000"), 8, 2)
    entry = self_entry("node-000000000000000a", registration, 7000)
    assert entries_from_json([entry]) == (
        PeerEntry("node-000000000000000a", "admin", registration.addresses, 8, 2),
    )
    assert entry["port"] == 7000
