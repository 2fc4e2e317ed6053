"""TLS material of the pool services (the relay and the control plane).

A service serves one or more pools. For each pool it needs the pool root certificate
(``ca.crt``) and a server certificate issued by that root, kept next to it::

    pools/<name>/ca.crt                  the pool root (clients' certificates chain to it)
    pools/<name>/<service>.crt, .key     the service's own member certificate and key

On the admin device (``root.key`` present) the service certificate is made, or renewed,
with a fresh key on first use, device name ``<service>``. On a member device without
the root, the device's own ``member.crt`` and ``node.key`` are used instead.

One TLS server serves every pool: the client names the pool ID as TLS SNI
(``server_hostname=pool_id``) and the server switches to that pool's context; clients
that send no SNI get the first pool's. Client certificates are then checked against
each pool root (and its revocations) to learn the client's pool and node ID.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.certs.errors import CertError, CertificateError
from reconciler.certs.files import load_certificate, load_identity, new_seed, write_private
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import (
    MemberCertInfo,
    needs_renewal,
    sign_member_certificate,
    verify_member_certificate,
)
from reconciler.certs.root import PoolRoot, TrustAnchor
from reconciler.certs.x509util import der_to_pem
from reconciler.drivers.tls import TlsFiles
from reconciler.home import Home
from reconciler.store import Store
from reconciler.store_admin import revocations

log = logging.getLogger("meshnet.service-tls")


@dataclass(frozen=True)
class ServedPool:
    """A pool a service serves: its root and the service's own TLS files."""

    name: str
    anchor: TrustAnchor
    files: TlsFiles


def default_ca_files(home: Home) -> list[Path]:
    """Every ``$MESHNET_HOME/pools/*/ca.crt``."""
    return sorted((home.root / "pools").glob("*/ca.crt"))


def load_served_pools(
    home: Home, service: str, ca_files: Iterable[Path], now: float
) -> list[ServedPool]:
    """The pools whose material is usable (others are logged and skipped)."""
    pools = []
    for ca in ca_files:
        try:
            pools.append(served_pool(home, service, ca, now))
        except (OSError, ValueError, CertError) as err:
            log.warning("not serving the pool of %s: %s", ca, err)
    return pools


def served_pool(home: Home, service: str, ca_file: Path, now: float) -> ServedPool:
    anchor = TrustAnchor.from_cert_der(load_certificate(ca_file))
    directory = ca_file.parent
    cert, key = directory / f"{service}.crt", directory / f"{service}.key"
    if (directory / "root.key").exists():
        _ensure_service_cert(directory, service, anchor, now)
    elif not cert.exists():
        cert, key = directory / "member.crt", home.node_key
        if not cert.exists():
            raise FileNotFoundError(f"no {service}.crt, root.key or member.crt in {directory}")
    return ServedPool(directory.name, anchor, TlsFiles(cert, key, ca_file))


def _ensure_service_cert(directory: Path, service: str, anchor: TrustAnchor, now: float) -> None:
    cert, key = directory / f"{service}.crt", directory / f"{service}.key"
    if cert.exists() and key.exists():
        try:
            info = verify_member_certificate(load_certificate(cert), anchor, now)
            if not needs_renewal(info, now):
                return
        except CertificateError:
            pass
    root_identity = load_identity(directory / "root.key")
    root = PoolRoot.load(root_identity.seed, anchor.cert_der, directory.name)
    identity = NodeIdentity(new_seed())
    der = sign_member_certificate(root, identity.public_key, service, "member", now)
    write_private(key, identity.private_key_pem())
    write_private(cert, der_to_pem(der))
    log.info("made the %s certificate of pool %s (%s)", service, directory.name, identity.node_id)


def _pool_context(pool: ServedPool, all_cas: list[Path], verify: ssl.VerifyMode) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = verify
    ctx.load_cert_chain(pool.files.cert, pool.files.key)
    for ca in all_cas:
        ctx.load_verify_locations(cafile=str(ca))
    return ctx


def server_context(
    pools: list[ServedPool], verify: ssl.VerifyMode = ssl.CERT_REQUIRED
) -> ssl.SSLContext:
    """A TLS 1.3 server context for every pool, chosen by SNI (the pool ID)."""
    if not pools:
        raise ValueError("no pool to serve: no usable pools/*/ca.crt")
    cas = [p.files.ca for p in pools]
    contexts = {p.anchor.pool_id: _pool_context(p, cas, verify) for p in pools}
    default = contexts[pools[0].anchor.pool_id]

    def choose(sslobj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        if name is not None and name in contexts:
            sslobj.context = contexts[name]

    default.sni_callback = choose
    return default


def identify_client(
    der: bytes,
    pools: Iterable[ServedPool],
    revoked: Mapping[str, Collection[str]],
    now: float,
) -> tuple[ServedPool, MemberCertInfo]:
    """The pool and member named by a client certificate; CertificateError if none.

    ``revoked`` maps pool IDs to revoked key or certificate fingerprints.
    """
    reason = "untrusted"
    for pool in pools:
        try:
            info = verify_member_certificate(
                der, pool.anchor, now, revoked.get(pool.anchor.pool_id, ())
            )
        except CertificateError as err:
            if err.reason not in ("untrusted", "other_pool"):
                reason = err.reason
            continue
        return pool, info
    raise CertificateError(reason, f"client certificate refused ({reason})")


def load_revocations(home: Home, pools: Iterable[ServedPool]) -> dict[str, frozenset[str]]:
    """Revoked fingerprints per pool ID, from the store's revocations table (if any)."""
    if not home.state_db.exists():
        return {}
    with Store.open(home.root) as store:
        return {p.anchor.pool_id: frozenset(revocations(store, p.name)) for p in pools}


def wait_for_pools(
    home: Home, service: str, ca_files: list[Path] | None, poll: float = 1.0
) -> list[ServedPool]:
    """The pools to serve, waiting until there is one: the guide starts the relay and the
    control plane before `mesh pool-create`. Ctrl+C while waiting raises KeyboardInterrupt."""
    announced = False
    while True:
        pools = load_served_pools(home, service, ca_files or default_ca_files(home), time.time())
        if pools:
            return pools
        if not announced:
            log.info("no pool to serve yet in %s: waiting for `mesh pool-create`", home.root)
            announced = True
        time.sleep(poll)
