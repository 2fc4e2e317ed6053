"""HTTP join: a token holder gets a certificate from a pinned control plane; the
beacons' admission rules hold (used-up tokens, bad proofs, revoked keys, forged roots)."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import verify_member_certificate
from reconciler.certs.root import TrustAnchor, create_pool_root
from reconciler.controlplane.joining import JoinRequest, join
from reconciler.drivers.joinclient import HttpJoinError, http_join
from reconciler.store import Store
from reconciler.store_admin import record_revocation, tokens


def _join(kit: Any, plane: Any, token: str, identity: NodeIdentity, pin: str | None = None) -> Any:
    address = f"127.0.0.1:{plane.plane.port}"
    pin = pin or kit.root.fingerprint
    return http_join(address, kit.root.pool_id, pin, identity, "laptop", token, time.time())


def test_a_token_holder_joins_and_the_token_is_charged(kit: Any, plane: Any) -> None:
    token = kit.token(usages=1)
    identity = NodeIdentity(os.urandom(32))
    cert, root = _join(kit, plane, token, identity)
    anchor = TrustAnchor.from_cert_der(root, pinned_fingerprint=kit.root.fingerprint)
    info = verify_member_certificate(cert, anchor, time.time())
    assert info.node_id == identity.node_id and info.device_name == "laptop"
    with Store.open(kit.home.root) as store:
        [stored] = tokens(store, "lab")
        assert stored.record.usages_left == 0
        assert any(e.reason == "MemberJoined" for e in store.events("Pool", "lab"))
    again, _ = _join(kit, plane, token, identity)  # a retry: same cert, no second charge
    assert again == cert
    with pytest.raises(HttpJoinError, match="token used up"):
        _join(kit, plane, token, NodeIdentity(os.urandom(32)))


def test_wrong_tokens_and_revoked_keys_are_refused(kit: Any, plane: Any) -> None:
    with pytest.raises(HttpJoinError, match="unknown token"):
        _join(kit, plane, "abcdef.0123456789abcdef", NodeIdentity(os.urandom(32)))
    token = kit.token()
    wrong_secret = token.split(".")[0] + ".zzzzzzzzzzzzzzzz"
    with pytest.raises(HttpJoinError, match="bad proof"):
        _join(kit, plane, wrong_secret, NodeIdentity(os.urandom(32)))
    banned = NodeIdentity(os.urandom(32))
    with Store.open(kit.home.root) as store:
        record_revocation(store, kit.root, banned.fingerprint, time.time())
    with pytest.raises(HttpJoinError, match="revoked"):
        _join(kit, plane, token, banned)


def test_a_control_plane_of_another_root_is_not_trusted(kit: Any, plane: Any) -> None:
    impostor = create_pool_root(os.urandom(32), "lab", time.time())
    with pytest.raises(HttpJoinError, match="not the pinned one"):
        _join(kit, plane, kit.token(), NodeIdentity(os.urandom(32)), pin=impostor.fingerprint)


def _request(
    kit: Any, identity: NodeIdentity, now: float, pool_id: str = "", **override: Any
) -> JoinRequest:
    from reconciler.certs.tokens import make_join_proof, signed_message

    nonce, pool_id = os.urandom(16), pool_id or kit.root.pool_id
    token_id, proof = make_join_proof(kit.token(), pool_id, identity.public_key, nonce, now)
    message = signed_message(pool_id, identity.public_key, nonce, now, "dev")
    fields = {
        "poolId": pool_id, "publicKey": identity.public_key.hex(), "deviceName": "dev",
        "tokenId": token_id, "proof": proof.hex(), "nonce": nonce.hex(), "timestamp": now,
        "signature": identity.sign(message).hex(), **override,
    }  # fmt: skip
    return JoinRequest.model_validate(fields)


def test_stale_requests_and_bad_signatures_are_400(kit: Any, plane: Any) -> None:
    from fastapi import HTTPException

    state = plane.plane._server.config.app.state.meshnet
    identity = NodeIdentity(os.urandom(32))
    with pytest.raises(HTTPException) as stale:
        join(state, _request(kit, identity, time.time() - 3600))
    assert stale.value.status_code == 400 and "timestamp" in stale.value.detail
    with pytest.raises(HTTPException) as forged:
        join(state, _request(kit, identity, time.time(), deviceName="other"))
    assert forged.value.status_code == 400 and "signature" in forged.value.detail
    with pytest.raises(HTTPException) as elsewhere:
        join(state, _request(kit, identity, time.time(), pool_id="pool-0000000000000000"))
    assert elsewhere.value.status_code == 404
