"""Join tokens, kubeadm style: ``abcdef.0123456789abcdef`` (``[a-z0-9]{6}.[a-z0-9]{16}``).

The part before the dot is the public token ID; the part after it is the secret.
The secret never travels in clear. A joiner proves it holds the token with::

    proof = HMAC-SHA256(key = token_key(secret),
                        msg = b"meshnet-join-proof-v1\\x00" || pool_id || 0x00
                              || joiner_pubkey (32 bytes) || nonce || timestamp (8 bytes, ms, BE))

and sends ``token_id`` + ``proof`` in its (self-signed) join request. The admin looks
the ID up and recomputes the HMAC with ``hmac.compare_digest``. The proof binds the
pool, the joiner's key and the request's nonce and time, so an eavesdropper can
neither learn the secret nor reuse the proof for another key.

The admin stores ``token_key(secret)`` = sha256(domain || secret), not the token
text. Note: anyone holding that key can make proofs, exactly like the token itself,
so the store that keeps it is private (mode 0600); it only keeps the token text from
being shown again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from dataclasses import dataclass, replace

from reconciler.certs.errors import TokenError

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
PROOF_DOMAIN = b"meshnet-join-proof-v1\x00"
KEY_DOMAIN = b"meshnet-token-key-v1\x00"


def generate_token(rand_bytes: bytes) -> str:
    """A new token from at least 64 random bytes (e.g. ``os.urandom(64)``).

    Bytes are mapped onto the 36-letter alphabet by rejection sampling (unbiased).
    """
    limit = 256 - 256 % len(ALPHABET)
    chars = [ALPHABET[b % len(ALPHABET)] for b in rand_bytes if b < limit]
    if len(chars) < 22:
        raise ValueError("not enough random bytes for a token; pass 64 or more")
    return "".join(chars[:6]) + "." + "".join(chars[6:22])


def parse_token(token: str) -> tuple[str, str]:
    """Split a token into (id, secret); TokenError if it has the wrong form."""
    match = TOKEN_RE.match(token.strip())
    if match is None:
        raise TokenError("malformed", "a join token looks like abcdef.0123456789abcdef")
    return match.group(1), match.group(2)


def token_key(secret: str) -> bytes:
    """The HMAC key derived from a token secret (what the admin stores)."""
    return hashlib.sha256(KEY_DOMAIN + secret.encode()).digest()


def _proof_message(pool_id: str, joiner_pubkey: bytes, nonce: bytes, timestamp: float) -> bytes:
    millis = struct.pack("!Q", max(0, int(timestamp * 1000)))
    return PROOF_DOMAIN + pool_id.encode() + b"\x00" + joiner_pubkey + nonce + millis


def make_join_proof(
    token: str, pool_id: str, joiner_pubkey: bytes, nonce: bytes, timestamp: float
) -> tuple[str, bytes]:
    """(token_id, proof) for a join request."""
    token_id, secret = parse_token(token)
    message = _proof_message(pool_id, joiner_pubkey, nonce, timestamp)
    return token_id, hmac.new(token_key(secret), message, hashlib.sha256).digest()


HTTP_JOIN_DOMAIN = b"meshnet-http-join-v1\x00"


def signed_message(pool_id: str, pubkey: bytes, nonce: bytes, timestamp: float, name: str) -> bytes:
    """What a joiner signs with its node key in an HTTP join request."""
    millis = struct.pack("!Q", max(0, int(timestamp * 1000)))
    return HTTP_JOIN_DOMAIN + pool_id.encode() + b"\x00" + pubkey + nonce + millis + name.encode()


@dataclass(frozen=True)
class TokenRecord:
    """What the admin keeps about a token. ``usages_left`` None means unlimited."""

    token_id: str
    key: bytes
    expires: float
    usages_left: int | None = None
    description: str = ""

    @classmethod
    def create(
        cls, token: str, now: float, ttl: float = 86400.0, usages: int | None = None
    ) -> TokenRecord:
        token_id, secret = parse_token(token)
        return cls(token_id=token_id, key=token_key(secret), expires=now + ttl, usages_left=usages)

    def unusable_reason(self, now: float) -> str | None:
        """None when the token can still be used, else why not."""
        if now >= self.expires:
            return "token expired"
        if self.usages_left is not None and self.usages_left <= 0:
            return "token used up"
        return None

    def check_proof(
        self, proof: bytes, pool_id: str, joiner_pubkey: bytes, nonce: bytes, timestamp: float
    ) -> bool:
        expected = hmac.new(
            self.key, _proof_message(pool_id, joiner_pubkey, nonce, timestamp), hashlib.sha256
        ).digest()
        return hmac.compare_digest(expected, proof)

    def used(self) -> TokenRecord:
        """The record after one successful join."""
        if self.usages_left is None:
            return self
        return replace(self, usages_left=self.usages_left - 1)
