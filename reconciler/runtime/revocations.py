"""A pool's revocation list as the agent keeps it: entries signed by the pool root,
persisted in the store (so a restart remembers them), spread by gossip, consulted by
peer links and beacons."""

from __future__ import annotations

import logging

from reconciler.certs.errors import CertError
from reconciler.certs.revocation import RevocationList
from reconciler.certs.root import TrustAnchor
from reconciler.poolinfo import PoolInfo
from reconciler.store import Store
from reconciler.store_admin import add_revocations, revocations

log = logging.getLogger("meshnet.revocation")


def node_id_of_key(fingerprint: str) -> str:
    """The node ID named by a key fingerprint (node IDs are prefixes of key hashes)."""
    return "node-" + fingerprint.removeprefix("sha256:")[:16]


class Revocations:
    """The revocation list of one pool on this device."""

    def __init__(self, store: Store, info: PoolInfo) -> None:
        self.store = store
        self.info = info
        self._anchor: TrustAnchor | None = None
        self._encoded: dict[str, bytes] = {}

    def attach(self, anchor: TrustAnchor) -> None:
        self._anchor = anchor
        self.reload()

    def reload(self) -> list[bytes]:
        """Entries added to the store since the last look (valid ones only)."""
        new = []
        for fingerprint, encoded in revocations(self.store, self.info.name).items():
            if fingerprint not in self._encoded and self._valid(encoded):
                self._encoded[fingerprint] = encoded
                new.append(encoded)
        return new

    def entries(self) -> list[bytes]:
        return list(self._encoded.values())

    def fingerprints(self) -> frozenset[str]:
        return frozenset(self._encoded)

    def node_ids(self) -> set[str]:
        return {node_id_of_key(fp) for fp in self._encoded}

    def blocks(self, node_id: str, cert_fingerprint: str) -> bool:
        return cert_fingerprint in self._encoded or node_id in self.node_ids()

    def verify(self, encoded: bytes) -> frozenset[str] | None:
        """Gossip's verifier: every node ID a valid blob revokes (and remember them)."""
        decoded = self._decode(encoded)
        if decoded is None or not len(decoded):
            return None
        new = {e.fingerprint: encoded for e in decoded if e.fingerprint not in self._encoded}
        if new:
            self._encoded.update(new)
            add_revocations(self.store, self.info.name, new)
        return frozenset(node_id_of_key(e.fingerprint) for e in decoded)

    def _valid(self, encoded: bytes) -> bool:
        return self._decode(encoded) is not None

    def _decode(self, encoded: bytes) -> RevocationList | None:
        if self._anchor is None:
            return None
        try:
            return RevocationList.decode(encoded, self._anchor)
        except (CertError, ValueError) as err:
            log.warning("ignoring an invalid revocation entry: %s", err)
            return None
