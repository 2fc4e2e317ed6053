"""Control plane fixtures: an admin home with a pool, members, and a running server
(in a thread with its own event loop, so tests can use blocking HTTP clients)."""

from __future__ import annotations

import asyncio
import os
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from manifests import ObjectMeta, Pool
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import sign_member_certificate
from reconciler.certs.root import PoolRoot
from reconciler.certs.tokens import TokenRecord, generate_token
from reconciler.certs.x509util import der_to_pem
from reconciler.controlplane.serve import ControlPlane
from reconciler.drivers.tls import TlsFiles, client_context
from reconciler.home import Home
from reconciler.pools import create_root, load_root
from reconciler.store import Store
from reconciler.store_admin import put_token


@dataclass(frozen=True)
class Kit:
    home: Home
    root: PoolRoot
    tmp: Path

    @property
    def ca_file(self) -> Path:
        return self.home.pool_dir(self.root.name) / "ca.crt"

    def member_files(self, name: str, root: PoolRoot | None = None) -> TlsFiles:
        root = root or self.root
        identity = NodeIdentity(os.urandom(32))
        cert = sign_member_certificate(root, identity.public_key, name, "member", time.time())
        files = TlsFiles(self.tmp / f"{name}.crt", self.tmp / f"{name}.key", self.ca_file)
        files.cert.write_bytes(der_to_pem(cert))
        files.key.write_bytes(identity.private_key_pem())
        return files

    def token(self, usages: int | None = None) -> str:
        token = generate_token(os.urandom(64))
        with Store.open(self.home.root) as store:
            put_token(store, "lab", TokenRecord.create(token, time.time(), usages=usages))
        return token


def make_kit(root_dir: Path) -> Kit:
    home = Home(root_dir / "home")
    create_root(home, "lab")
    with Store.open(home.root) as store:
        store.apply(Pool(metadata=ObjectMeta(name="lab")))
    (root_dir / "members").mkdir()
    return Kit(home, load_root(home, "lab"), root_dir / "members")


@dataclass
class Running:
    plane: ControlPlane
    loop: asyncio.AbstractEventLoop

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.plane.port}"

    def client(self, files: TlsFiles | None) -> httpx.Client:
        if files is None:
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        else:
            ctx = client_context(files)
        return httpx.Client(base_url=self.url, verify=ctx, timeout=10)


def free_base() -> int:
    return 20000 + secrets.randbelow(20000)


def start_plane(home: Home, base: int, end: int) -> Running:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True, name="plane-loop").start()
    plane = ControlPlane(home, "127.0.0.1", base, end)
    asyncio.run_coroutine_threadsafe(plane.start(), loop).result(15)
    return Running(plane, loop)


def stop_plane(running: Running) -> None:
    asyncio.run_coroutine_threadsafe(running.plane.stop(), running.loop).result(15)
    running.loop.call_soon_threadsafe(running.loop.stop)


@pytest.fixture
def kit(tmp_path: Path) -> Kit:
    return make_kit(tmp_path)


@pytest.fixture
def plane(kit: Kit) -> Iterator[Running]:
    base = free_base()
    running = start_plane(kit.home, base, base + 50)
    yield running
    stop_plane(running)


@pytest.fixture
def member(kit: Kit, plane: Running) -> Iterator[httpx.Client]:
    with plane.client(kit.member_files("m1")) as client:
        yield client


Factory = Callable[[str], TlsFiles]


@pytest.fixture
def base_port() -> int:
    """A random high port to start a range at (tests control their own range)."""
    return free_base()


@pytest.fixture
def plane_at(kit: Kit) -> Iterator[Callable[[int, int], Running]]:
    """Start control planes on a port range of the test's choosing."""
    started: list[Running] = []

    def start(base: int, end: int) -> Running:
        running = start_plane(kit.home, base, end)
        started.append(running)
        return running

    yield start
    for running in started:
        stop_plane(running)


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """A live control plane with a job and observed state, and a requests session
    holding a member certificate (server verification off: the API is under test)."""
    import requests

    kit = make_kit(tmp_path_factory.mktemp("fuzz"))
    with Store.open(kit.home.root) as store:
        store.put_observed("peers/lab", [{"nodeId": "node-1", "status": "ONLINE"}])
        store.put_observed("ring/lab", {"converged": True})
    base = free_base()
    running = start_plane(kit.home, base, base + 50)
    files = kit.member_files("fuzzer")
    session = requests.Session()
    session.cert = (str(files.cert), str(files.key))
    session.verify = False
    yield running.url, session
    session.close()
    stop_plane(running)
