"""Errors of the certificate layer.

Error tree::

    CertError                 base of everything raised here
    ├── CertificateError      a certificate failed verification (``reason`` says why)
    ├── TokenError            a join token is malformed
    └── RevocationError       a revocation entry is not signed by the pool root

All carry a short machine-readable ``reason`` and a readable message.
"""

from __future__ import annotations


class CertError(Exception):
    """Base class: something in the certificate layer was refused."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason


class CertificateError(CertError):
    """A certificate is malformed, expired, untrusted, revoked or names the wrong node."""


class TokenError(CertError):
    """A join token string does not have the form ``[a-z0-9]{6}.[a-z0-9]{16}``."""


class RevocationError(CertError):
    """A revocation entry is malformed or its signature does not verify against the root."""
