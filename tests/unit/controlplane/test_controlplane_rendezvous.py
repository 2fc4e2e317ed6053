"""The control plane as a rendezvous: members register where they listen and get the
admin (at the address they reached) and each other back; strangers get nothing."""

from __future__ import annotations

import ssl
from typing import Any

from reconciler.certs.member import node_id_from_peer_cert
from reconciler.observed import rendezvous_key, rendezvous_self_key
from reconciler.store import Store

ADMIN = {"nodeId": "node-00000000000000ad", "name": "admin", "port": 7100,
         "addresses": ["198.51.100.1:7100"], "memoryBytes": 1, "cores": 1}  # fmt: skip


def pem_to_der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def _body(name: str, address: str) -> dict[str, Any]:
    return {"name": name, "addresses": [address], "memoryBytes": 2**30, "cores": 4}


def test_members_meet_through_the_control_plane(kit: Any, plane: Any) -> None:
    with Store.open(kit.home.root) as store:
        store.put_observed(rendezvous_self_key("lab"), ADMIN)
    alice_files, bob_files = kit.member_files("alice"), kit.member_files("bob")
    with plane.client(alice_files) as alice, plane.client(bob_files) as bob:
        first = alice.post("/v1/rendezvous", json=_body("alice", "192.0.2.1:7001"))
        assert first.status_code == 200
        assert [p["nodeId"] for p in first.json()["peers"]] == [ADMIN["nodeId"]]
        assert first.json()["peers"][0]["addresses"] == ["127.0.0.1:7100", "198.51.100.1:7100"]
        second = bob.post("/v1/rendezvous", json=_body("bob", "192.0.2.2:7002")).json()
    alice_id = node_id_from_peer_cert(pem_to_der(alice_files.cert.read_bytes()))
    assert [p["nodeId"] for p in second["peers"]] == [ADMIN["nodeId"], alice_id]
    assert second["peers"][1]["addresses"] == ["192.0.2.1:7001"]
    with Store.open(kit.home.root) as store:
        assert set(store.get_observed(rendezvous_key("lab"))) == {
            alice_id, node_id_from_peer_cert(pem_to_der(bob_files.cert.read_bytes())),
        }  # fmt: skip


def test_anonymous_and_malformed_registrations_are_refused(kit: Any, plane: Any) -> None:
    with plane.client(None) as anonymous:
        assert anonymous.post("/v1/rendezvous", json=_body("x", "192.0.2.1:1")).status_code == 401
    with plane.client(kit.member_files("m")) as member:
        too_many = {"name": "m", "addresses": [f"192.0.2.{i}:1" for i in range(9)]}
        assert member.post("/v1/rendezvous", json=too_many).status_code == 422
        bad = _body("m", "not an address")
        assert member.post("/v1/rendezvous", json=bad).status_code == 422
    with Store.open(kit.home.root) as store:
        assert store.get_observed(rendezvous_key("lab")) is None


def test_a_full_rendezvous_refuses_newcomers_but_keeps_its_members(
    kit: Any, plane: Any, monkeypatch: Any
) -> None:
    from reconciler.controlplane import rendezvous

    monkeypatch.setattr(rendezvous, "MAX_ENTRIES", 1)
    with plane.client(kit.member_files("a")) as a, plane.client(kit.member_files("b")) as b:
        assert a.post("/v1/rendezvous", json=_body("a", "192.0.2.1:1")).status_code == 200
        assert b.post("/v1/rendezvous", json=_body("b", "192.0.2.2:1")).status_code == 429
        assert a.post("/v1/rendezvous", json=_body("a", "192.0.2.1:2")).status_code == 200


def test_a_repeated_registration_does_not_rewrite_the_store(
    kit: Any, plane: Any, monkeypatch: Any
) -> None:
    from reconciler.controlplane import rendezvous

    monkeypatch.setattr(rendezvous, "REWRITE_SECONDS", 3600.0)
    with plane.client(kit.member_files("a")) as a:
        assert a.post("/v1/rendezvous", json=_body("a", "192.0.2.1:1")).status_code == 200
        with Store.open(kit.home.root) as store:
            (first,) = store.get_observed(rendezvous_key("lab")).values()
        for _ in range(5):
            assert a.post("/v1/rendezvous", json=_body("a", "192.0.2.1:1")).status_code == 200
        with Store.open(kit.home.root) as store:
            (same,) = store.get_observed(rendezvous_key("lab")).values()
        assert same == first  # not rewritten
        assert a.post("/v1/rendezvous", json=_body("a", "192.0.2.1:2")).status_code == 200
        with Store.open(kit.home.root) as store:
            (moved,) = store.get_observed(rendezvous_key("lab")).values()
    assert moved["addresses"] == ["192.0.2.1:2"]
