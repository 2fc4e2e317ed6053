"""Joining a pool: a real admin beacon machine on loopback (TTL 0) answers the join
runtime, which goes waiting -> pending -> joined, stores the certificate, makes the
Pool object from the Member's annotations and records the event; with a token and a
control plane it falls back to HTTPS; an answer for another pool is not taken."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from manifests import Member, Pool
from manifests.pool import DiscoverySpec
from reconciler import observed
from reconciler.annotations import CONTROL_PLANE_ANNOTATION, RELAYS_ANNOTATION, WEIGHTING_ANNOTATION
from reconciler.beacon.config import Advert, BeaconConfig
from reconciler.beacon.events import JoinAnswered
from reconciler.beacon.machine import BeaconProtocol, Membership
from reconciler.certs.admission import AdmissionMode
from reconciler.certs.desk import AdminDesk
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import sign_member_certificate, verify_member_certificate
from reconciler.certs.root import PoolRoot, create_pool_root
from reconciler.context import DeviceContext
from reconciler.controllers.pool import JOINED_VIA
from reconciler.drivers import joinclient
from reconciler.home import Home
from reconciler.node import init_node, load_identity, load_node_config
from reconciler.pools import read_pool_info
from reconciler.runtime import joinruntime
from reconciler.runtime.beaconsockets import (
    BeaconSockets,
    choose_interfaces,
    destinations,
    effective_discovery,
    open_beacon_sockets,
)
from reconciler.runtime.joinruntime import JoinError, JoinRuntime, read_token
from reconciler.store import Store


@pytest.fixture
def root() -> PoolRoot:
    return create_pool_root(os.urandom(32), "p", time.time())


@pytest.fixture
def ctx(home: Home) -> Iterator[DeviceContext]:
    init_node(home, "net", "pi")
    with Store.open(home.root) as store:
        yield DeviceContext(home, store, load_identity(home), load_node_config(home))


def _member(
    root: PoolRoot, annotations: dict[str, str] | None = None, token_file: Path | None = None
) -> Member:
    spec: dict[str, Any] = {
        "pool": {"name": "p", "id": root.pool_id, "rootFingerprint": root.fingerprint}
    }
    if token_file is not None:
        spec["tokenFile"] = str(token_file)
    metadata = {"name": "me", "annotations": annotations or {}}
    return Member.model_validate({"metadata": metadata, "spec": spec})


@asynccontextmanager
async def admin_on_loopback(
    root: PoolRoot, mode: AdmissionMode
) -> AsyncIterator[tuple[BeaconProtocol, BeaconSockets]]:
    """The pool's admin agent, its beacon machine pumped on loopback sockets."""
    discovery = effective_discovery(DiscoverySpec())
    interfaces = choose_interfaces(discovery)
    identity = NodeIdentity(os.urandom(32))
    now = time.time()
    der = sign_member_certificate(root, identity.public_key, "admin-box", "admin", now)
    machine = BeaconProtocol(
        BeaconConfig(root.pool_id, destinations(discovery)),
        identity,
        Advert("admin-box", interfaces[0].address, 7000, 8 << 30, 4),
        random.Random(),
        membership=Membership(root.anchor, der, verify_member_certificate(der, root.anchor, now)),
        admin=AdminDesk(root, mode, limiter=None),
    )
    sockets = await open_beacon_sockets(discovery, interfaces, machine, lambda event: None)
    try:
        yield machine, sockets
    finally:
        sockets.close()


async def _answer(runtime: JoinRuntime) -> None:
    await asyncio.wait_for(runtime.answered.wait(), 10)
    runtime.answered.clear()


async def _until(runtime: JoinRuntime, ctx: DeviceContext, state: str) -> None:
    """Answers until the join is in ``state`` (a joiner may ask, and hear, again)."""

    async def answers() -> None:
        while _join_state(ctx)["state"] != state:
            await runtime.answered.wait()
            runtime.answered.clear()

    await asyncio.wait_for(answers(), 10)


def _join_state(ctx: DeviceContext) -> dict[str, Any]:
    value = ctx.store.get_observed(observed.join_key("me"))
    assert isinstance(value, dict)
    return value


def test_read_token(tmp_path: Path, root: PoolRoot) -> None:
    assert read_token(_member(root)) is None
    token = tmp_path / "token"
    token.write_text("abcdef.0123456789abcdef\n")
    assert read_token(_member(root, token_file=token)) == "abcdef.0123456789abcdef"
    token.write_text("  \n")
    assert read_token(_member(root, token_file=token)) is None
    with pytest.raises(JoinError, match=r"cannot read token file .*missing"):
        read_token(_member(root, token_file=tmp_path / "missing"))


def test_an_approved_join_by_beacon_stores_the_pool(ctx: DeviceContext, root: PoolRoot) -> None:
    notes = {RELAYS_ANNOTATION: "127.0.0.1:4001,127.0.0.1:4002", WEIGHTING_ANNOTATION: "equal"}
    runtime = JoinRuntime(ctx, _member(root, notes), DiscoverySpec())

    async def scenario() -> None:
        async with admin_on_loopback(root, "auto"):
            await runtime.start()
            try:
                await _answer(runtime)
            finally:
                await runtime.stop()

    asyncio.run(scenario())
    assert runtime.joined
    info = read_pool_info(ctx.home, "p")
    assert info is not None and info.role == "member" and info.pool_id == root.pool_id
    pool = ctx.store.require("Pool", "p")
    assert isinstance(pool, Pool)
    assert pool.metadata.annotations[JOINED_VIA] == "me"
    assert pool.spec.relays == ["127.0.0.1:4001", "127.0.0.1:4002"]
    assert pool.spec.ring.weighting == "equal"
    (event,) = ctx.store.events("Member", "me")
    assert event.reason == "CertificateIssued" and "by beacon" in event.message
    assert _join_state(ctx)["state"] == "joined"


def test_a_join_waits_pending_until_the_admin_approves(ctx: DeviceContext, root: PoolRoot) -> None:
    runtime = JoinRuntime(ctx, _member(root), DiscoverySpec())

    async def scenario() -> None:
        async with admin_on_loopback(root, "approve") as (admin, sockets):
            await runtime.start()
            try:
                await _until(runtime, ctx, "pending")
                assert not runtime.joined and ctx.store.get("Pool", "p") is None
                assert _join_state(ctx)["attempts"] >= 1
                admin.approve("pi", time.time())
                sockets.pump.flush()
                await _until(runtime, ctx, "joined")
            finally:
                await runtime.stop()

    asyncio.run(scenario())
    assert runtime.joined and _join_state(ctx)["state"] == "joined"
    assert ctx.store.get("Pool", "p") is not None


def test_without_an_admin_the_join_waits(ctx: DeviceContext, root: PoolRoot) -> None:
    runtime = JoinRuntime(ctx, _member(root), DiscoverySpec())

    async def scenario() -> None:
        await runtime.start()
        await runtime.stop()

    asyncio.run(scenario())
    assert not runtime.joined
    assert _join_state(ctx)["state"] == "waiting"
    assert read_pool_info(ctx.home, "p") is None


def test_the_control_plane_is_asked_when_beacons_go_unanswered(
    ctx: DeviceContext, root: PoolRoot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text("abcdef.0123456789abcdef")
    member = _member(root, {CONTROL_PLANE_ANNOTATION: "127.0.0.1:8080"}, token)
    calls: list[tuple[Any, ...]] = []

    def http_join(*args: Any) -> tuple[bytes, bytes]:
        calls.append(args)
        if len(calls) == 1:
            raise ConnectionError("connection refused")
        identity: NodeIdentity = args[3]
        der = sign_member_certificate(root, identity.public_key, "pi", "member", time.time())
        return der, root.anchor.cert_der

    monkeypatch.setattr(joinclient, "http_join", http_join)
    monkeypatch.setattr(joinruntime, "HTTP_FALLBACK_AFTER", 0.0)
    monkeypatch.setattr(joinruntime, "HTTP_RETRY_SECONDS", 0.0)
    runtime = JoinRuntime(ctx, member, DiscoverySpec())

    async def scenario() -> None:
        await runtime.start()
        try:
            await _answer(runtime)
        finally:
            await runtime.stop()

    asyncio.run(scenario())
    assert runtime.joined and len(calls) == 2
    address, pool_id, pinned, identity, device, sent_token, _ = calls[0]
    assert (address, pool_id, pinned) == ("127.0.0.1:8080", root.pool_id, root.fingerprint)
    assert identity.node_id == ctx.node_id and device == "pi"
    assert sent_token == "abcdef.0123456789abcdef"
    assert "connection refused" in runtime.http_error
    pool = ctx.store.require("Pool", "p")
    assert isinstance(pool, Pool) and pool.spec.control_plane == "127.0.0.1:8080"
    (event,) = ctx.store.events("Member", "me")
    assert "through the control plane at 127.0.0.1:8080" in event.message


def test_an_answer_for_another_pool_is_not_taken(ctx: DeviceContext, root: PoolRoot) -> None:
    """The runtime checks an answer against the pinned pool before it keeps anything."""
    stranger = create_pool_root(os.urandom(32), "p", time.time())
    der = sign_member_certificate(stranger, ctx.identity.public_key, "pi", "member", time.time())
    runtime = JoinRuntime(ctx, _member(root), DiscoverySpec())

    async def scenario() -> None:
        await runtime.start()
        try:
            runtime._on_event(  # what the beacon pump hands over
                JoinAnswered("approved", "ok", der, stranger.anchor.cert_der, None)
            )
        finally:
            await runtime.stop()

    asyncio.run(scenario())
    assert not runtime.joined
    assert ctx.store.get("Pool", "p") is None
    assert read_pool_info(ctx.home, "p") is None  # nothing of the other pool kept


def test_a_certificate_for_another_device_is_not_taken(ctx: DeviceContext, root: PoolRoot) -> None:
    someone = NodeIdentity(os.urandom(32))
    der = sign_member_certificate(root, someone.public_key, "pi", "member", time.time())
    runtime = JoinRuntime(ctx, _member(root), DiscoverySpec())

    async def scenario() -> None:
        await runtime.start()
        try:
            runtime._on_event(JoinAnswered("approved", "ok", der, root.anchor.cert_der, None))
            assert runtime.answered.is_set()  # handled (and refused)
        finally:
            await runtime.stop()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await asyncio.gather(*others, return_exceptions=True)
        assert all(t.cancelled() for t in others)  # stop ends the runtime's tasks

    asyncio.run(scenario())
    assert not runtime.joined and read_pool_info(ctx.home, "p") is None
    assert ctx.store.events("Member", "me") == []


def test_a_denied_join_says_so_and_keeps_nothing(ctx: DeviceContext, root: PoolRoot) -> None:
    runtime = JoinRuntime(ctx, _member(root), DiscoverySpec())

    async def scenario() -> None:
        async with admin_on_loopback(root, "approve") as (admin, sockets):
            await runtime.start()
            try:
                await _until(runtime, ctx, "pending")
                admin.deny("pi", time.time())
                sockets.pump.flush()
                await _until(runtime, ctx, "denied")
            finally:
                await runtime.stop()

    asyncio.run(scenario())
    state = _join_state(ctx)
    assert state["state"] == "denied" and state["reason"]
    assert not runtime.joined and read_pool_info(ctx.home, "p") is None
    assert ctx.store.get("Pool", "p") is None
