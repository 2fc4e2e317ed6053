"""What a flood of anonymous join requests costs the admin (finding 2).

Feeds N token-less join requests from fresh keys (as beacons or POST /v1/join would
bring them) through the admin's desk and store recording, and prints the time per
request for the first and last 100 (medians), and what the store holds afterwards.
Then, with N Members in the store, compares finding a Member by node ID through the
index with the old way (parse every Member), side by side in the same run.

    python bench/join_flood.py [--count 1200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from manifests import Member, ObjectMeta, Pool
from reconciler.admission_records import find_member, record_join
from reconciler.beacon.handlers import join_requested
from reconciler.certs.admission import JoinClaim
from reconciler.certs.desk import AdminDesk
from reconciler.certs.identity import NodeIdentity
from reconciler.home import Home
from reconciler.pools import create_root, load_root, read_pool_info
from reconciler.store import Store
from reconciler.store_admin import denials

NOW = 1_750_000_000.0


def scan_member(store: Store, node_id: str) -> Member | None:
    """The old lookup: parse every Member (the reference)."""
    for obj in store.list("Member"):
        if isinstance(obj, Member) and obj.status.node_id == node_id:
            return obj
    return None


def flood(store: Store, home: Home, count: int) -> list[float]:
    root = load_root(home, "lab")
    info = read_pool_info(home, "lab")
    assert info is not None
    desk = AdminDesk(root, "token")
    costs = []
    for i in range(count):
        key = NodeIdentity(os.urandom(32))
        claim = JoinClaim(root.pool_id, key.public_key, key.node_id, f"fake{i}", os.urandom(16),
                          NOW)  # fmt: skip
        source = (f"10.{i // 60000}.{i // 250 % 240}.{i % 250}", 42424)
        started = time.perf_counter()
        answer = desk.answer(claim, source, (), NOW + i * 0.1)  # spaced: past the limiter
        record_join(store, info, desk, join_requested(claim, answer, source))
        costs.append(time.perf_counter() - started)
    return costs


def lookups(store: Store, count: int) -> tuple[float, float]:
    node_ids = []
    for i in range(count):
        node_id = f"node-{i:016x}"
        store.apply(Member.model_validate({"metadata": {"name": f"m{i}"}, "spec": {"pool": {
            "name": "lab", "id": "pool-0123456789abcdef", "rootFingerprint": "sha256:" + "a" * 64,
        }}}))  # fmt: skip
        store.update_status("Member", f"m{i}", {"nodeId": node_id, "phase": "Joined"})
        node_ids.append(node_id)
    probes = node_ids[:: max(1, count // 50)]
    indexed, scanned = [], []
    for node_id in probes:
        started = time.perf_counter()
        assert find_member(store, node_id) is not None
        indexed.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert scan_member(store, node_id) is not None
        scanned.append(time.perf_counter() - started)
    return statistics.median(indexed), statistics.median(scanned)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp) / "home")
        create_root(home, "lab")
        with Store.open(home.root) as store:
            store.apply(Pool(metadata=ObjectMeta(name="lab")))
            costs = flood(store, home, args.count)
            first, last = costs[:100], costs[-100:]
            print(f"{args.count} anonymous join requests (token mode, fresh keys):")
            print(f"  per request: first 100 median {statistics.median(first) * 1e3:.2f} ms, "
                  f"last 100 median {statistics.median(last) * 1e3:.2f} ms")  # fmt: skip
            rows = [(d.reason, d.count) for d in denials(store)]
            print(f"  store afterwards: {len(store.list('Member'))} Members, "
                  f"{len(store.events(limit=10**9))} events, denial counters {rows}")  # fmt: skip
        with Store.open(Path(tmp) / "lookups") as store:
            indexed, scanned = lookups(store, args.count)
        print(f"find a Member by node ID among {args.count} Members (median):")
        print(f"  indexed {indexed * 1e3:.3f} ms, parse every Member (old) {scanned * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
