"""Join tokens: format, proof of possession, records, admission decisions."""

from __future__ import annotations

import random
import re
from dataclasses import replace

import pytest

from reconciler.certs.admission import Approve, Deny, JoinClaim, Pending, decide_join
from reconciler.certs.errors import TokenError
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.root import PoolRoot
from reconciler.certs.tokens import TokenRecord, generate_token, make_join_proof, parse_token

TOKEN = "abcdef.0123456789abcdef"


def test_certs_generated_tokens_have_kubeadm_form() -> None:
    rng = random.Random(7)
    tokens = {generate_token(rng.randbytes(64)) for _ in range(200)}
    assert len(tokens) == 200
    assert all(re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", t) for t in tokens)
    with pytest.raises(ValueError):
        generate_token(b"\xff" * 64)  # every byte rejected by the sampler


@pytest.mark.parametrize("bad", ["abcde.0123456789abcdef", "ABCDEF.0123456789abcdef", "x", ""])
def test_certs_parse_token_rejects_malformed(bad: str) -> None:
    with pytest.raises(TokenError):
        parse_token(bad)


def _claim(root: PoolRoot, joiner: NodeIdentity, token: str | None, now: float) -> JoinClaim:
    nonce = b"n" * 16
    token_id, proof = ("", b"")
    if token:
        token_id, proof = make_join_proof(token, root.pool_id, joiner.public_key, nonce, now)
    return JoinClaim(
        pool_id=root.pool_id,
        joiner_pubkey=joiner.public_key,
        node_id=joiner.node_id,
        device_name="joiner",
        nonce=nonce,
        timestamp=now,
        token_id=token_id,
        proof=proof,
    )


def test_certs_proof_does_not_contain_the_secret(
    root: PoolRoot, alice: NodeIdentity, now: float
) -> None:
    claim = _claim(root, alice, TOKEN, now)
    assert claim.token_id == "abcdef"
    assert b"0123456789abcdef" not in claim.proof and len(claim.proof) == 32
    record = TokenRecord.create(TOKEN, now)
    args = (root.pool_id, alice.public_key, claim.nonce, now)
    assert record.check_proof(claim.proof, *args)
    other_key = NodeIdentity(b"\x0c" * 32).public_key
    assert not record.check_proof(claim.proof, root.pool_id, other_key, claim.nonce, now)
    assert not TokenRecord.create("abcdef.0123456789abcdee", now).check_proof(claim.proof, *args)


def test_certs_token_record_expiry_and_usages(now: float) -> None:
    record = TokenRecord.create(TOKEN, now, ttl=60, usages=1)
    assert record.unusable_reason(now) is None
    assert record.unusable_reason(now + 60) == "token expired"
    assert record.used().unusable_reason(now) == "token used up"
    assert TokenRecord.create(TOKEN, now).used().usages_left is None


def test_certs_decide_join_token_mode(root: PoolRoot, alice: NodeIdentity, now: float) -> None:
    tokens = {"abcdef": TokenRecord.create(TOKEN, now, usages=1)}

    def decide(claim: JoinClaim, toks: dict[str, TokenRecord] = tokens) -> object:
        return decide_join(claim, "token", toks, set(), {}, now, root.anchor)

    assert decide(_claim(root, alice, TOKEN, now)) == Approve("abcdef")
    assert decide(_claim(root, alice, None, now)) == Deny("token required")
    wrong = _claim(root, alice, "abcdef.0000000000000000", now)
    assert decide(wrong) == Deny("token rejected: bad proof")
    unknown = _claim(root, alice, "zzzzzz.0123456789abcdef", now)
    assert decide(unknown) == Deny("token rejected: unknown token")
    used = {"abcdef": tokens["abcdef"].used()}
    assert decide(_claim(root, alice, TOKEN, now), used) == Deny("token rejected: token used up")
    revoked = decide_join(
        _claim(root, alice, TOKEN, now), "auto", tokens, {alice.fingerprint}, {}, now, root.anchor
    )
    assert revoked == Deny("revoked")


def test_certs_decide_join_approve_and_auto(
    root: PoolRoot, alice: NodeIdentity, now: float
) -> None:
    claim = _claim(root, alice, None, now)

    def decide(mode: str, approvals: dict[str, str], c: JoinClaim = claim) -> object:
        return decide_join(c, mode, {}, set(), approvals, now, root.anchor)  # type: ignore[arg-type]

    assert decide("approve", {}) == Pending("pending approval")
    assert decide("approve", {alice.node_id: "approved"}) == Approve()
    assert decide("approve", {alice.node_id: "denied"}) == Deny("denied by admin")
    assert isinstance(decide("auto", {}), Deny)
    pinned = replace(claim, root_fingerprint=root.fingerprint)
    assert decide("auto", {}, pinned) == Approve()
    assert decide("auto", {}, replace(pinned, pool_id="pool-0000000000000000")) == Deny(
        "wrong pool"
    )


def test_certs_decide_join_renewal(
    root: PoolRoot, other_root: PoolRoot, alice: NodeIdentity, now: float
) -> None:
    from reconciler.certs.member import sign_member_certificate

    cert = sign_member_certificate(root, alice.public_key, "alice", "member", now)
    claim = replace(_claim(root, alice, None, now), renewal_cert=cert)

    def decide(c: JoinClaim, revoked: set[str] = set()) -> object:  # noqa: B006
        return decide_join(c, "token", {}, revoked, {}, now, root.anchor)

    assert decide(claim) == Approve(device_name="alice")
    # finding 5: a renewal keeps the certified name, whatever the request says
    assert decide(replace(claim, device_name="admin-laptop")) == Approve(device_name="alice")
    assert decide(claim, {alice.fingerprint}) == Deny("revoked")
    bob = NodeIdentity(b"\x0b" * 32)
    stolen = replace(_claim(root, bob, None, now), renewal_cert=cert)
    assert decide(stolen) == Deny("renewal refused: certificate is for another key")
    foreign = sign_member_certificate(other_root, alice.public_key, "alice", "member", now)
    assert decide(replace(claim, renewal_cert=foreign)) == Deny("renewal refused: untrusted")
