"""A member's certificate material on disk, under MESHNET_HOME/pools/<name>/.

    member.crt   this device's member certificate (PEM), issued by the pool root
    ca.crt       the pool root certificate (PEM)
    pool.json    see reconciler/pools.py

The TLS key is the node key itself (node.key, PKCS8 PEM): one identity per device.
"""

from __future__ import annotations

import time

from reconciler.beacon.config import Membership
from reconciler.certs.errors import CertError
from reconciler.certs.files import load_certificate, save_certificate
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import (
    MemberCertInfo,
    needs_renewal,
    read_member_certificate,
    sign_member_certificate,
    verify_member_certificate,
)
from reconciler.certs.root import TrustAnchor
from reconciler.drivers.tls import TlsFiles
from reconciler.home import Home
from reconciler.poolinfo import PoolInfo
from reconciler.pools import load_root, write_pool_info


def tls_files(home: Home, pool_name: str) -> TlsFiles:
    directory = home.pool_dir(pool_name)
    return TlsFiles(directory / "member.crt", home.node_key, directory / "ca.crt")


def read_member_cert(home: Home, pool_name: str) -> bytes | None:
    """This device's member certificate (DER), if it has one."""
    path = home.pool_dir(pool_name) / "member.crt"
    try:
        return load_certificate(path)
    except (OSError, ValueError):
        return None


def anchor(home: Home, info: PoolInfo) -> TrustAnchor:
    """The pool's root certificate, checked against the pinned fingerprint and pool ID."""
    der = load_certificate(home.pool_dir(info.name) / "ca.crt")
    return TrustAnchor.from_cert_der(der, info.root_fingerprint, info.pool_id)


def ensure_admin_certificate(
    home: Home, info: PoolInfo, identity: NodeIdentity, device_name: str, now: float
) -> None:
    """On the admin device, issue (or renew) its own member certificate, role admin."""
    current = read_member_cert(home, info.name)
    if current is not None:
        try:
            held = verify_member_certificate(current, anchor(home, info), now)
            if held.node_id == identity.node_id and not needs_renewal(held, now):
                return
        except CertError:
            pass
    root = load_root(home, info.name)
    der = sign_member_certificate(root, identity.public_key, device_name, "admin", now)
    save_certificate(home.pool_dir(info.name) / "member.crt", der)


def save_joined(home: Home, pool_name: str, cert_der: bytes, root_der: bytes) -> PoolInfo:
    """Record a certificate the admin issued: member.crt, ca.crt, then pool.json."""
    root_anchor = TrustAnchor.from_cert_der(root_der)
    directory = home.pool_dir(pool_name)
    save_certificate(directory / "ca.crt", root_der)
    save_certificate(directory / "member.crt", cert_der)
    info = PoolInfo(pool_name, root_anchor.pool_id, root_anchor.fingerprint, "member")
    write_pool_info(home, info)
    return info


def save_renewed(home: Home, pool_name: str, cert_der: bytes) -> None:
    """Replace this device's member certificate with a renewed one (same pool, same role)."""
    save_certificate(home.pool_dir(pool_name) / "member.crt", cert_der)


def membership(home: Home, info: PoolInfo, revoked: frozenset[str] = frozenset()) -> Membership:
    """This device's verified place in a pool (for the beacon machine)."""
    pool_anchor = anchor(home, info)
    der = read_member_cert(home, info.name)
    if der is None:
        raise FileNotFoundError(f"no member certificate for pool {info.name}")
    cert = verify_member_certificate(der, pool_anchor, time.time(), revoked)
    return Membership(pool_anchor, der, cert)


def certificate_status(home: Home, info: PoolInfo) -> dict[str, object]:
    """Status fields from this device's member certificate ({} when it has none)."""
    der = read_member_cert(home, info.name)
    if der is None:
        return {}
    try:
        return cert_summary(read_member_certificate(der))
    except CertError:
        return {}


def cert_summary(cert: MemberCertInfo) -> dict[str, object]:
    """Status fields of a Member from its certificate."""
    return {
        "nodeId": cert.node_id,
        "certificateFingerprint": cert.cert_fingerprint,
        "keyFingerprint": cert.fingerprint,
        "notAfter": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cert.not_after)),
    }
