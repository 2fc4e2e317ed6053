"""A fake LAN for beacon machines: explicit clock, multicast fan-out, optional loss."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from reconciler.beacon.events import Addr, Event
from reconciler.beacon.machine import Advert, BeaconConfig, BeaconProtocol, Membership
from reconciler.certs.admission import AdmissionMode
from reconciler.certs.desk import AdminDesk
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import sign_member_certificate, verify_member_certificate
from reconciler.certs.root import PoolRoot, create_pool_root

NOW = 1_750_000_000.0
TICK = 0.1
GROUP: Addr = ("239.192.0.1", 42424)
E = TypeVar("E", bound=Event)


@dataclass
class Lan:
    """Machines by address; datagrams to GROUP reach everyone else."""

    root: PoolRoot
    now: float = NOW
    nodes: dict[Addr, BeaconProtocol] = field(default_factory=dict)
    events: dict[Addr, list[Event]] = field(default_factory=dict)
    wire_log: list[tuple[Addr, bytes, Addr]] = field(default_factory=list)
    drop_if: Callable[[Addr, Addr], bool] = lambda src, dst: False

    def config(self, pool_id: str | None = None) -> BeaconConfig:
        return BeaconConfig(pool_id=pool_id or self.root.pool_id, destinations=(GROUP,))

    def add(self, addr: Addr, proto: BeaconProtocol) -> BeaconProtocol:
        self.nodes[addr] = proto
        self.events[addr] = []
        return proto

    def member(self, addr: Addr, seed: bytes, name: str, role: str = "member") -> BeaconProtocol:
        ident = NodeIdentity(seed)
        der = sign_member_certificate(self.root, ident.public_key, name, role, self.now)  # type: ignore[arg-type]
        info = verify_member_certificate(der, self.root.anchor, self.now)
        advert = Advert(name, addr[0], 7000, 8 << 30, 4)
        proto = BeaconProtocol(
            self.config(), ident, advert, random.Random(seed),
            membership=Membership(self.root.anchor, der, info),
        )  # fmt: skip
        return self.add(addr, proto)

    def admin(self, addr: Addr, mode: AdmissionMode = "token") -> BeaconProtocol:
        proto = self.member(addr, b"\xad" * 32, "admin-box", "admin")
        proto.admin = AdminDesk(self.root, mode)
        return proto

    def joiner(self, addr: Addr, seed: bytes = b"\x10" * 32, name: str = "pi") -> BeaconProtocol:
        advert = Advert(name, addr[0], 7000, 4 << 30, 4)
        proto = BeaconProtocol(self.config(), NodeIdentity(seed), advert, random.Random(1))
        return self.add(addr, proto)

    def flush(self) -> None:
        """Deliver everything queued, repeatedly, until quiet."""
        for _ in range(50):
            sent = [
                (a, d, dst)
                for a, p in self.nodes.items()
                for d, dst in p.datagrams_to_send(self.now)
            ]
            if not sent:
                break
            for src, data, dst in sent:
                self.wire_log.append((src, data, dst))
                for target in self._targets(src, dst):
                    if not self.drop_if(src, target):
                        self.nodes[target].receive_datagram(data, src, self.now)
            self._collect()

    def _targets(self, src: Addr, dst: Addr) -> list[Addr]:
        if dst == GROUP:
            return [a for a in self.nodes if a != src]
        return [dst] if dst in self.nodes else []

    def _collect(self) -> None:
        for addr, proto in self.nodes.items():
            while (event := proto.next_event()) is not None:
                self.events[addr].append(event)

    def run(self, seconds: float) -> None:
        """Advance the clock by TICK steps, firing timers and delivering datagrams."""
        end = self.now + seconds
        self.flush()
        while self.now < end:
            self.now += TICK
            for proto in self.nodes.values():
                timer = proto.get_timer()
                if timer is not None and timer <= self.now:
                    proto.handle_timer(self.now)
            self.flush()

    def of(self, addr: Addr, kind: type[E]) -> list[E]:
        return [e for e in self.events[addr] if isinstance(e, kind)]


@pytest.fixture()
def root() -> PoolRoot:
    return create_pool_root(b"\x01" * 32, "home", NOW)


@pytest.fixture()
def other_root() -> PoolRoot:
    return create_pool_root(b"\x02" * 32, "neighbour", NOW)


@pytest.fixture()
def lan(root: PoolRoot) -> Lan:
    return Lan(root)
