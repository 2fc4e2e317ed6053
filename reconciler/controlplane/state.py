"""What the control plane's handlers share: the home, the served pools, and one store
connection per thread (sqlite connections stay in the thread that made them)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from reconciler.certs.desk import AdminDesk
from reconciler.drivers.service_tls import ServedPool
from reconciler.home import Home
from reconciler.store import Store
from reconciler.store_admin import revocations


@dataclass
class AppState:
    """Shared by every request of one control plane."""

    home: Home
    pools: list[ServedPool]
    join_lock: threading.Lock = field(default_factory=threading.Lock)
    desks: dict[str, AdminDesk] = field(default_factory=dict)  # pool ID -> desk
    api_keys_from_lan: bool = True  # False: API keys only from loopback (apiauth.py)
    _local: threading.local = field(default_factory=threading.local)

    def store(self) -> Store:
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store.open(self.home.root)
        return store

    def revoked(self) -> dict[str, frozenset[str]]:
        """Revoked fingerprints per pool ID."""
        store = self.store()
        return {p.anchor.pool_id: frozenset(revocations(store, p.name)) for p in self.pools}

    def pool_by_id(self, pool_id: str) -> ServedPool | None:
        return next((p for p in self.pools if p.anchor.pool_id == pool_id), None)
