"""Revocation lists: root-signed entries, merge, encode/decode."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest

from reconciler.certs.errors import RevocationError
from reconciler.certs.identity import verify_signature
from reconciler.certs.revocation import RevocationList, revoke
from reconciler.certs.root import PoolRoot


def test_certs_revocation_round_trip_and_merge(root: PoolRoot, now: float) -> None:
    ours = RevocationList(root.anchor, [revoke(root, "sha256:aa", now, "lost laptop")])
    theirs = RevocationList(root.anchor, [revoke(root, "sha256:bb", now + 1.2345)])
    assert ours.merge(theirs) == {"sha256:bb"}
    assert ours.merge(theirs) == set()
    assert ours.fingerprints() == {"sha256:aa", "sha256:bb"}
    decoded = RevocationList.decode(ours.encode(), root.anchor)
    assert decoded.fingerprints() == ours.fingerprints()
    assert decoded.encode() == ours.encode()
    assert "sha256:aa" in decoded and len(decoded) == 2
    entry = next(iter(decoded))
    assert entry.reason == "lost laptop" and entry.revoked_at == pytest.approx(now)


def test_certs_revocation_refuses_forgeries(
    root: PoolRoot, other_root: PoolRoot, now: float
) -> None:
    rl = RevocationList(root.anchor)
    forged = revoke(other_root, "sha256:aa", now)
    with pytest.raises(RevocationError):
        rl.add(forged)
    with pytest.raises(RevocationError):
        rl.add(replace(revoke(root, "sha256:aa", now), fingerprint="sha256:ab"))
    with pytest.raises(RevocationError):
        RevocationList.decode(RevocationList(other_root.anchor).encode(), root.anchor)
    with pytest.raises(RevocationError):
        rl.merge(RevocationList(other_root.anchor))
    assert len(rl) == 0


def test_certs_revocation_decode_never_raises_other_errors(root: PoolRoot, now: float) -> None:
    data = RevocationList(root.anchor, [revoke(root, "sha256:aa", now)]).encode()
    for cut in range(len(data)):
        with pytest.raises(RevocationError):
            RevocationList.decode(data[:cut], root.anchor)
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 0x40
        with contextlib.suppress(RevocationError):
            RevocationList.decode(bytes(flipped), root.anchor)


def test_certs_revocation_refuses_oversized_lists_before_verifying(
    root: PoolRoot, now: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 7: a blob of 65,535 entries must not cost 65,535 signature checks."""
    from reconciler.certs import revocation

    entry = revoke(root, "sha256:aa", now)
    big = RevocationList(root.anchor, [entry])
    big._entries = {f"sha256:{i:04x}": entry for i in range(revocation.MAX_ENTRIES + 1)}
    data = big.encode()
    checks: list[bytes] = []

    def counted(pubkey_raw: bytes, message: bytes, signature: bytes) -> bool:
        checks.append(message)
        return verify_signature(pubkey_raw, message, signature)

    monkeypatch.setattr(revocation, "verify_signature", counted)
    with pytest.raises(RevocationError) as err:
        RevocationList.decode(data, root.anchor)
    assert err.value.reason == "too_many" and checks == []
