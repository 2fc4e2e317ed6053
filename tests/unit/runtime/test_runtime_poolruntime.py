"""Two pool runtimes in one process, an admin and a member, on loopback (beacons with
TTL 0, peer links on 127.0.0.1): they find each other by beacon, converge a ring of two
and write its topology file; a revocation written to the admin's store drops the member;
a member that stops leaves the admin's ring.

``until`` awaits the stores' change notifications (``Store.on_change``: the runtime writes
rings and membership changes at once) and checks its condition after each, bounded by a
deadline on the loop's clock; no duration is asserted."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from manifests import Member, Pool
from reconciler import material
from reconciler.certs.member import sign_member_certificate
from reconciler.context import DeviceContext
from reconciler.home import Home
from reconciler.node import init_node, load_identity
from reconciler.pools import create_root, load_root
from reconciler.runtime import measuring
from reconciler.runtime.poolruntime import PoolRuntime
from reconciler.store import Store
from reconciler.store_admin import record_revocation

DEADLINE = 30.0  # seconds on the loop's clock: a bound for a hung test, not a figure


@pytest.fixture(autouse=True)
def no_kernel_selftest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime's speed stays unmeasured: no self-test thread outlives a test."""
    monkeypatch.setenv(measuring.SELFTEST_ENV, "0")
    monkeypatch.setattr(measuring, "_result", [])


@dataclass
class Device:
    name: str
    ctx: DeviceContext
    runtime: PoolRuntime
    running: bool = False

    @property
    def node_id(self) -> str:
        return self.ctx.node_id

    async def start(self) -> None:
        await self.runtime.start()
        self.running = True

    async def stop(self) -> None:
        self.running = False
        await self.runtime.stop()


def _device(tmp: Path, name: str, admin: Home | None = None, offer: int | None = None) -> Device:
    """A device with pool ``p`` (its admin, or a member of ``admin``'s pool offering
    ``offer`` bytes in its Member object)."""
    home = Home(tmp / name)
    node = init_node(home, "net", name)
    store = Store.open(home.root)
    pool, _ = store.apply(Pool.model_validate({"metadata": {"name": "p"}, "spec": {}}))
    assert isinstance(pool, Pool)
    identity = load_identity(home)
    if admin is None:
        info = create_root(home, "p")
    else:
        root = load_root(admin, "p")
        cert = sign_member_certificate(root, identity.public_key, name, "member", time.time())
        info = material.save_joined(home, "p", cert, root.cert_der)
        if offer is not None:
            store.apply(_member_object(info.pool_id, root.fingerprint, offer))
    ctx = DeviceContext(home, store, identity, node)
    return Device(name, ctx, PoolRuntime(ctx, pool, info))


def _member_object(pool_id: str, root_fingerprint: str, offer: int) -> Member:
    return Member.model_validate({
        "metadata": {"name": "p"},
        "spec": {"pool": {"name": "p", "id": pool_id, "rootFingerprint": root_fingerprint},
                 "capacity": {"memoryBytes": offer}},
    })  # fmt: skip


async def until(devices: tuple[Device, ...], check: Callable[[], bool], what: str) -> None:
    """Wait until ``check()`` holds, looking again whenever a device's runtime writes
    something decisive to its store (a ring, a member joining or leaving: the writes
    that bump the revision and call ``Store.on_change``)."""
    changed = asyncio.Event()
    removers = [d.ctx.store.on_change(changed.set) for d in devices]
    loop = asyncio.get_running_loop()
    give_up = loop.time() + DEADLINE
    try:
        while True:
            changed.clear()
            if check():
                return
            left = give_up - loop.time()
            assert left > 0, f"never: {what}"
            try:
                await asyncio.wait_for(changed.wait(), left)
            except TimeoutError:
                raise AssertionError(f"never: {what}") from None
    finally:
        for remove in removers:
            remove()


def _ring_of(device: Device) -> set[str]:
    ring = device.runtime.live("ring")
    return {m["nodeId"] for m in ring["members"]} if ring and ring["converged"] else set()


def _peer(device: Device, node_id: str) -> dict[str, object]:
    peers: list[dict[str, object]] = device.runtime.live("peers")
    rows = [r for r in peers if r["nodeId"] == node_id]
    assert len(rows) == 1, rows
    return rows[0]


@asynccontextmanager
async def _pool(tmp: Path, offer: int | None = None) -> AsyncIterator[tuple[Device, Device]]:
    admin = _device(tmp, "alpha")
    member = _device(tmp, "beta", admin=admin.ctx.home, offer=offer)
    try:
        for device in (admin, member):
            await device.start()
        both = {admin.node_id, member.node_id}
        pair = (admin, member)
        await until(pair, lambda: _ring_of(admin) == both == _ring_of(member), "a ring of two")
        yield admin, member
    finally:
        for device in (member, admin):
            if device.running:
                await device.stop()


def test_a_runtime_that_has_not_started_shows_nothing(tmp_path: Path) -> None:
    runtime = _device(tmp_path, "alpha").runtime
    assert runtime.live("peers") == [] and runtime.live("ring") is None
    assert runtime.ring_converged() is False
    assert runtime.measures() == ([], [])


def test_admin_and_member_find_each_other_and_converge(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _pool(tmp_path) as (admin, member):
            assert admin.runtime.ring_converged() and member.runtime.ring_converged()
            seen = _peer(admin, member.node_id)
            assert (seen["name"], seen["status"], seen["foundBy"]) == ("beta", "ONLINE", "beacon")
            assert seen["linkConnected"] is True and seen["route"] == "direct"
            assert _peer(member, admin.node_id)["name"] == "alpha"
            topology_file = admin.ctx.home.ring_topology(admin.runtime.info.pool_id)
            topology = json.loads(topology_file.read_text())
            shards = sorted((m["shard"]["start"], m["shard"]["end"]) for m in topology["members"])
            assert topology["converged"] is True and len(shards) == 2
            assert shards[0][0] == 0 and shards[0][1] == shards[1][0]
            assert shards[1][1] == topology["shardColumns"]

    asyncio.run(scenario())


def test_a_revocation_in_the_admins_store_drops_the_member(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _pool(tmp_path) as (admin, member):
            root = load_root(admin.ctx.home, "p")
            fingerprint = member.ctx.identity.fingerprint
            record_revocation(admin.ctx.store, root, fingerprint, time.time(), "stolen laptop")
            admin.runtime.refresh()  # what the agent does when meshctl changes the store
            await until((admin,), lambda: _ring_of(admin) == {admin.node_id}, "the admin alone")
            gone = _peer(admin, member.node_id)
            assert gone["status"] != "ONLINE" and gone["linkConnected"] is False
            assert admin.runtime.revocations.blocks(member.node_id, "")

    asyncio.run(scenario())


def test_a_member_that_stops_leaves_the_admins_ring(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _pool(tmp_path) as (admin, member):
            await member.stop()
            await until((admin,), lambda: _ring_of(admin) == {admin.node_id}, "the admin alone")
            assert _peer(admin, member.node_id)["status"] != "ONLINE"
            assert member.runtime.live("ring") is not None  # its machine stays readable

    asyncio.run(scenario())


def test_a_member_offering_less_memory_than_it_has_states_and_holds_to_its_offer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``spec.capacity.memoryBytes`` bounds what the member states as free (the planner's
    input) and what its job service lets a share take. The admin has no Member object:
    ``MESHNET_MEMORY_OFFER`` is its offer (a Member's own field comes first)."""
    offer, agent_offer = 300 << 20, 200 << 20
    monkeypatch.setenv("MESHNET_MEMORY_OFFER", str(agent_offer))

    async def scenario() -> None:
        async with _pool(tmp_path, offer=offer) as (admin, member):
            assert member.runtime.jobs is not None and admin.runtime.jobs is not None
            assert member.runtime.jobs.memory_offer() == offer
            assert admin.runtime.jobs.memory_offer() == agent_offer

            now = member.runtime.pump.now()
            stated = member.runtime.gossip.measure_reports(now)[member.node_id]
            assert stated.free_memory == offer  # gossip states it to the pool
            now = admin.runtime.pump.now()
            own = admin.runtime.gossip.measure_reports(now)[admin.node_id]
            assert own.free_memory == agent_offer
            published = member.ctx.store.get_observed("gossip/p") or {}  # describe pool's
            assert published["measured"]["memoryOfferBytes"] == offer

    asyncio.run(scenario())


@pytest.mark.parametrize("value", ["", "lots", "-5", "0", "0GiB", "8 parsecs"])
def test_an_unset_or_malformed_agent_offer_is_no_offer(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    from reconciler.context import memory_offer_setting

    monkeypatch.setenv("MESHNET_MEMORY_OFFER", value)
    assert memory_offer_setting() is None


@pytest.mark.parametrize(
    ("value", "size"), [(" 1048576 ", 1 << 20), ("8GiB", 8 << 30), ("1.5GB", 1_500_000_000)]
)
def test_an_agent_offer_is_bytes_or_a_size_with_a_unit(
    monkeypatch: pytest.MonkeyPatch, value: str, size: int
) -> None:
    from reconciler.context import memory_offer_setting

    monkeypatch.setenv("MESHNET_MEMORY_OFFER", value)
    assert memory_offer_setting() == size
