"""doctor's discovery findings: which paths are in use, and why."""

from __future__ import annotations

from typing import Any

from manifests import ObjectMeta, Pool
from meshctl.doctor import verdict
from meshctl.doctor_discovery import check_discovery
from meshctl.doctor_findings import Finding
from reconciler.home import Home
from reconciler.store import Store

POOL = Pool(metadata=ObjectMeta(name="lab"))


def _findings(home: Home, stats: dict[str, Any]) -> list[Finding]:
    with Store.open(home.root) as store:
        store.put_observed("beacons/lab", stats)
        return check_discovery(store, POOL)


def test_multicast_and_rendezvous_paths_are_named(home: Home) -> None:
    stats = {
        "sent": 9, "received": 9, "peers": {},
        "interfaces": [{"name": "eth0", "address": "192.0.2.5"},
                       {"name": "wlan0", "address": "198.51.100.5"}],
        "relays": [{"address": "192.0.2.1:4001", "reserved": True, "peersHeard": 2}],
        "rendezvous": {
            "controlPlane": {"address": "192.0.2.1:8080", "lastError": "", "peersHeard": 3,
                             "lastSuccess": 1.0},
            "peers": ["node-000000000000000b"],
        },
    }  # fmt: skip
    messages = [f.message for f in _findings(home, stats)]
    assert "multicast on eth0 (192.0.2.5), wlan0 (198.51.100.5): no beacon heard" in messages[0]
    assert "rendezvous via relay 192.0.2.1:4001: registered, 2 other member(s)" in messages[1]
    assert "rendezvous via control plane 192.0.2.1:8080: registered, 3" in messages[2]
    assert "met 1 peer(s) whose beacons never arrived: node-000000000000000b" in messages[3]
    findings = [
        Finding("ok", "beacons", "sent 9, received 9, from 0 peer(s)"),
        *_findings(home, stats),
    ]
    assert "rendezvous at the relay or control plane found" in verdict(findings)[0]


def test_no_path_at_all_is_a_warning_with_the_fix(home: Home) -> None:
    stats = {
        "sent": 9,
        "received": 9,
        "peers": {},
        "interfaces": [{"name": "eth0", "address": "192.0.2.5"}],
    }
    findings = _findings(home, stats)
    assert [f.level for f in findings] == ["warn", "warn"]
    assert "no rendezvous configured" in findings[1].message
    broken = {**stats, "relays": [{"address": "192.0.2.1:4001", "reserved": False,
                                   "lastError": "ConnectionRefusedError"}]}  # fmt: skip
    assert "not connected (ConnectionRefusedError)" in _findings(home, broken)[1].message
