"""What a member does with the members a rendezvous hands it: which it seeds gossip
with, how often, and where it dials them; and reading rendezvous answers."""

from __future__ import annotations

from reconciler.drivers.netif import Interface
from reconciler.relay.messages import PeerEntry
from reconciler.runtime.rendezvous import RESEED_SECONDS, Seeds, entries_from_json

ME = "node-000000000000000a"
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
