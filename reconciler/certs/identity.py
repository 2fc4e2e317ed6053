"""Node identity: an Ed25519 key made on the device.

The private key never leaves the device. Everything public about a node is derived
from its raw 32-byte public key:

- ``fingerprint(pub)`` = ``"sha256:" + sha256(pub).hexdigest()`` — the identity used
  in revocation lists, pinning and replay bookkeeping.
- ``node_id_for(pub)`` = ``"node-" + sha256(pub).hexdigest()[:16]`` — a short readable
  name (64 bits). It is never trusted on its own: certificates are only accepted when
  the node ID they name is the one derived from the key they certify.

Signing uses pynacl; the same seed is exposed as a ``cryptography`` key for X.509 and
PEM (PKCS8) so the driver can build TLS contexts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

SEED_LEN = 32
PUBKEY_LEN = 32
SIGNATURE_LEN = 64


def fingerprint(pubkey_raw: bytes) -> str:
    """``sha256:<hex>`` of a raw 32-byte Ed25519 public key."""
    return "sha256:" + hashlib.sha256(pubkey_raw).hexdigest()


def node_id_for(pubkey_raw: bytes) -> str:
    """The stable readable node ID of a public key: ``node-`` + 16 hex digits."""
    return "node-" + hashlib.sha256(pubkey_raw).hexdigest()[:16]


def verify_signature(pubkey_raw: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by the key."""
    if len(pubkey_raw) != PUBKEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    try:
        VerifyKey(pubkey_raw).verify(message, signature)
    except (BadSignatureError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class NodeIdentity:
    """An Ed25519 key pair built from a 32-byte seed (the seed is the private key)."""

    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_LEN:
            raise ValueError(f"an Ed25519 seed is {SEED_LEN} bytes, got {len(self.seed)}")

    @cached_property
    def public_key(self) -> bytes:
        """The raw 32-byte public key (derived once: it costs a scalar multiplication,
        and the runtimes ask for the node ID several times a second)."""
        return bytes(SigningKey(self.seed).verify_key)

    @cached_property
    def node_id(self) -> str:
        return node_id_for(self.public_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (pynacl)."""
        return SigningKey(self.seed).sign(message).signature

    def crypto_key(self) -> ed25519.Ed25519PrivateKey:
        """The same key as a ``cryptography`` object, for X.509 signing."""
        return ed25519.Ed25519PrivateKey.from_private_bytes(self.seed)

    def private_key_pem(self) -> bytes:
        """The private key as unencrypted PKCS8 PEM (for ``SSLContext.load_cert_chain``)."""
        return self.crypto_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_private_key_pem(cls, pem: bytes) -> NodeIdentity:
        """Load a PKCS8 PEM Ed25519 private key."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cls(raw)
