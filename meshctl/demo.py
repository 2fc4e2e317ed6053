"""`mesh demo`: a two-member pool on this machine answers a prompt, end to end.

Two devices, each a separate agent process with its own MESHNET_HOME under a temporary
folder; beacons stay on the loopback interface (TTL 0) on a private port. Device 1
creates the pool and a join token, device 2 joins with it, the ring converges, and
"Hello world" runs on the demo model across both. Everything started is stopped at
the end, also on Ctrl+C. Each wait (the certificate, the ring, the answer) is woken by
what the agents push over their local APIs (``watch``, ``follow-job``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.markup import escape

from manifests import Member, MeshObject, Pool
from meshctl.agentclient import AgentClient, AgentGone, NoAgent
from meshctl.agentops import reconcile_now
from meshctl.inference_cmd import follow_job, job_document, print_figures, result_document
from meshctl.observed_cmd import print_rings, rings
from meshctl.ports import agent_side
from meshctl.render import console
from reconciler.home import Home
from reconciler.node import init_node
from reconciler.store import Store
from reconciler.store_admin import issue_token

T = TypeVar("T")
POOL = "demo-pool"
TICK_SECONDS = 1.0  # no change pushed: look at the agent process and the timeout
START_SECONDS = 0.05  # the agent process starts: how often its socket is tried


class DemoDevice:
    """One demo device: a home and, once started, an agent process."""

    def __init__(self, root: Path, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.home = Home(root / name)
        self._env = {**env, "MESHNET_HOME": str(self.home.root)}
        self.process: subprocess.Popen[bytes] | None = None

    def start_agent(self) -> None:
        self.home.logs.mkdir(parents=True, exist_ok=True)
        out = (self.home.logs / "agent.out").open("wb")
        self.process = subprocess.Popen(
            agent_side().agent_command(),
            env=self._env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def stop_agent(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def store(self) -> Store:
        return Store.open(self.home.root)

    def last_words(self, lines: int = 15) -> str:
        """The end of the agent's output (the demo's folders are removed afterwards)."""
        try:
            text = (self.home.logs / "agent.out").read_text(errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:])

    def get(self, kind: str, name: str) -> MeshObject | None:
        with self.store() as store:
            return store.get(kind, name)

    def ring_size(self) -> int:
        with self.store() as store:
            found = rings(store, POOL)
        return len(found[0]["members"]) if found and found[0].get("converged") else 0


def wait_until(check: Callable[[], T | None], timeout: float, what: str, device: DemoDevice) -> T:
    """``check()``'s first true value, checked now and after each change of the device's
    store as its agent pushes it; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with console.status(what):
        for _ in store_changes(device):
            if device.process is not None and device.process.poll() is not None:
                raise RuntimeError(f"the agent of {device.name} exited:\n{device.last_words()}")
            value = check()
            if value:
                return value
            if time.monotonic() >= deadline:
                break
    raise TimeoutError(f"timed out after {timeout:.0f}s: {what}")


def store_changes(device: DemoDevice) -> Iterator[None]:
    """Yield now, then after every change of the device's store: pushed by its agent's
    local API (``watch``), or a tick every TICK_SECONDS. While the agent process starts
    (its socket not there yet) the socket is tried every START_SECONDS."""
    client, stream = AgentClient(device.home.agent_socket), None
    try:
        while True:
            yield
            if stream is None:
                try:
                    stream = client.watch(idle=TICK_SECONDS)  # its first event: at once
                except NoAgent:
                    time.sleep(START_SECONDS)
                    continue
            try:
                stream.next_event()
            except AgentGone:  # the agent stopped: the caller sees its process exit
                stream.close()
                stream = None
    finally:
        if stream is not None:
            stream.close()


@contextmanager
def demo_root(keep: bool) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="meshnet-demo-"))
    try:
        yield root
    finally:
        if keep:
            console.print(f"kept the demo's folders in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def demo_env() -> dict[str, str]:
    """Loopback only, a private beacon port, one BLAS thread per agent (two share a CPU)."""
    return {
        **os.environ,
        "MESHNET_BEACON_INTERFACE": "127.0.0.1",
        "MESHNET_BEACON_PORT": str(42500 + secrets.randbelow(500)),
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }


class Timeline:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def step(self, text: str) -> None:
        console.print(f"[dim]T+{time.monotonic() - self.start:5.2f}s[/dim] {text}", highlight=False)


def _create_pool(admin: DemoDevice) -> tuple[Pool, str]:
    init_node(admin.home, "demo", "device1")
    with admin.store() as store:
        store.apply(
            Pool.model_validate({"metadata": {"name": POOL}, "spec": {"networkId": "demo"}})
        )
        reconcile_now(admin.home, store, "Pool", POOL)
        pool = store.require("Pool", POOL)
        token, _ = issue_token(store, POOL, 3600.0, usages=1)
    assert isinstance(pool, Pool)
    return pool, token


def _request_join(member: DemoDevice, pool: Pool, token: str) -> None:
    init_node(member.home, "demo", "device2")
    token_file = member.home.root / "join.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    ref = {"name": POOL, "id": pool.status.pool_id, "rootFingerprint": pool.status.root_fingerprint}
    document = {
        "metadata": {"name": "device2"},
        "spec": {"pool": ref, "tokenFile": str(token_file)},
    }
    with member.store() as store:
        store.apply(Member.model_validate(document))


def _joined(member: DemoDevice) -> bool:
    obj = member.get("Member", "device2")
    return isinstance(obj, Member) and obj.status.phase == "Joined"


def _share_model(devices: list[DemoDevice], model: str) -> None:
    """A model given by path is offered to members by name: put it in their models
    folders (members never open a path a peer names)."""
    if model == "demo":
        return
    source = Path(model).expanduser().resolve()
    for device in devices:
        folder = device.home.root / "models"
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / source.name
        if not link.exists():
            link.symlink_to(source)


def _ring_of_two(device: DemoDevice) -> Callable[[], bool]:
    return lambda: device.ring_size() == 2


def run_demo(root: Path, args: dict[str, Any], timeout: float) -> None:
    env = demo_env()
    admin, member = DemoDevice(root, "device1", env), DemoDevice(root, "device2", env)
    clock = Timeline()
    try:
        pool, token = _create_pool(admin)
        clock.step(f"device1 created pool {pool.status.pool_id} and a join token")
        admin.start_agent()
        _request_join(member, pool, token)
        _share_model([admin, member], str(args["model"]))
        member.start_agent()
        clock.step("device2 asks to join by beacon (loopback, TTL 0)")
        wait_until(lambda: _joined(member), timeout, "waiting for device2's certificate", member)
        clock.step("device2 holds a certificate signed by the pool root")
        for device in (admin, member):
            wait_until(_ring_of_two(device), timeout, "waiting for the ring", device)
        clock.step("the ring converged on both devices")
        with admin.store() as store:
            print_rings(rings(store, POOL), "table")
            job = job_document("demo-hello", POOL, args)
            store.apply(job)
            clock.step(f"device1 coordinates the job; prompt: {args['prompt']!r}")
            status = follow_job(store, "demo-hello", quiet=False)
        console.print()
        if status.get("phase") != "Succeeded":
            raise RuntimeError(
                f"the job failed: {status.get('failureReason')}: {status.get('failureMessage')}"
            )
        clock.step("done")
        print_figures(result_document(status))
    finally:
        for device in (member, admin):
            device.stop_agent()


def demo(
    prompt: str = typer.Option("Hello world", "--prompt", help="The prompt to run."),
    max_tokens: int = typer.Option(16, "--max-tokens", min=1, help="Tokens to generate."),
    model: str = typer.Option("demo", "--model", help="'demo' or a model path."),
    keep: bool = typer.Option(False, "--keep", help="Keep the demo's folders afterwards."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for each step."),
) -> None:
    """Run a two-member pool on this machine, answer a prompt across it, stop it all."""
    args = {"prompt": prompt, "max_tokens": max_tokens, "model": model,
            "temperature": 0.0, "seed": None, "chat": False}  # fmt: skip
    with demo_root(keep) as root:
        try:
            run_demo(root, args, timeout)
        except (TimeoutError, RuntimeError) as err:
            console.print(f"[red]demo failed:[/red] {escape(str(err))}\n(rerun with --keep to keep "
                          "the logs)", highlight=False)  # fmt: skip
            raise typer.Exit(1) from err
        except KeyboardInterrupt:
            console.print("\ninterrupted; everything the demo started is stopped")
            raise typer.Exit(130) from None
    console.print("Stopped everything the demo started.")
