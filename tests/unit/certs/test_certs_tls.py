"""One real-socket test: TLS 1.3 with Ed25519 member certificates on loopback."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import (
    node_id_from_peer_cert,
    sign_member_certificate,
    verify_member_certificate,
)
from reconciler.certs.root import PoolRoot, create_pool_root
from reconciler.certs.x509util import der_to_pem


def _context(
    tmp: Path, name: str, root: PoolRoot, ident: NodeIdentity, trust: PoolRoot, server: bool
) -> ssl.SSLContext:
    now = time.time()  # OpenSSL checks validity against the real clock
    cert = sign_member_certificate(root, ident.public_key, name, "member", now)
    (tmp / f"{name}.crt").write_bytes(der_to_pem(cert))
    (tmp / f"{name}.key").write_bytes(ident.private_key_pem())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(tmp / f"{name}.crt", tmp / f"{name}.key")
    ctx.load_verify_locations(cadata=trust.anchor.cert_pem.decode())
    return ctx


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> tuple[object, object]:
    """Run one handshake on 127.0.0.1; return (server result, client result)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    result: dict[str, object] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                result["server"] = (tls.version(), tls.getpeercert(binary_form=True))
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            result["server"] = exc

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_ctx.wrap_socket(raw) as tls,
        ):
            peer = tls.getpeercert(binary_form=True)
            result["client"] = (tls.version(), peer, tls.recv(2))
    except (ssl.SSLError, OSError) as exc:
        result["client"] = exc
    finally:
        thread.join(10)
        listener.close()
    return result["server"], result["client"]


@pytest.fixture()
def roots() -> tuple[PoolRoot, PoolRoot]:
    now = time.time()
    return create_pool_root(b"R" * 32, "home", now), create_pool_root(b"X" * 32, "evil", now)


def test_certs_tls13_mutual_handshake_with_member_certs(
    tmp_path: Path, roots: tuple[PoolRoot, PoolRoot]
) -> None:
    root, _ = roots
    alice, bob = NodeIdentity(b"a" * 32), NodeIdentity(b"b" * 32)
    server = _context(tmp_path, "alice", root, alice, root, server=True)
    client = _context(tmp_path, "bob", root, bob, root, server=False)
    srv, cli = _handshake(server, client)
    assert isinstance(srv, tuple) and isinstance(cli, tuple), (srv, cli)
    assert srv[0] == "TLSv1.3" and cli[0] == "TLSv1.3"
    assert cli[2] == b"ok"
    assert node_id_from_peer_cert(srv[1]) == bob.node_id
    assert node_id_from_peer_cert(cli[1]) == alice.node_id
    info = verify_member_certificate(cli[1], root.anchor, time.time())
    assert info.device_name == "alice"


def test_certs_tls_refuses_cert_from_another_root(
    tmp_path: Path, roots: tuple[PoolRoot, PoolRoot]
) -> None:
    root, other = roots
    server = _context(tmp_path, "alice", root, NodeIdentity(b"a" * 32), root, server=True)
    client = _context(tmp_path, "mallory", other, NodeIdentity(b"m" * 32), root, server=False)
    srv, _cli = _handshake(server, client)
    assert isinstance(srv, ssl.SSLError)


def test_certs_tls_client_refuses_server_from_another_root(
    tmp_path: Path, roots: tuple[PoolRoot, PoolRoot]
) -> None:
    root, other = roots
    server = _context(tmp_path, "mallory", other, NodeIdentity(b"m" * 32), root, server=True)
    client = _context(tmp_path, "bob", root, NodeIdentity(b"b" * 32), root, server=False)
    _srv, cli = _handshake(server, client)
    assert isinstance(cli, ssl.SSLError)
