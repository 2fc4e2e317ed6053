"""`mesh pool-join`: ask a pool's admin for a certificate, by LAN beacon.

With an agent running for this home, the Member is written and the agent joins (its
progress pushed by the agent's local API: ``watch``); with none, the join runs here
until the certificate arrives (or the timeout), so the seed's order of steps — join,
then `mesh start` — works as written.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import typer

from manifests import Member
from manifests.base import object_name_from
from manifests.fields import positive_size
from meshctl.agentclient import AgentClient, AgentGone, NoAgent
from meshctl.context import CliError, friendly, home, open_store
from meshctl.ports import agent_side
from meshctl.render import console, err_console
from reconciler.annotations import (
    CONTROL_PLANE_ANNOTATION,
    RELAYS_ANNOTATION,
    SHARD_COLUMNS_ANNOTATION,
    WEIGHTING_ANNOTATION,
)
from reconciler.certs.identity import fingerprint
from reconciler.home import Home, write_atomic
from reconciler.node import load_node_config
from reconciler.observed import join_key
from reconciler.pools import read_pool_info
from reconciler.singleton import running_pid
from reconciler.store import Store

TICK_SECONDS = 1.0  # the elapsed seconds shown while the agent joins
POLL_SECONDS = 0.2  # an agent without the local API's watch: how often the store is read
TROUBLESHOOTING = """\
No certificate yet. Check that:
  1. the admin device is running (device1.sh, or `mesh start` there) on the same LAN;
  2. the firewall allows UDP multicast to 239.192.0.1:42424 (`sudo tcpdump -i any udp port 42424`
     on the admin should show beacons every 5 s);
  3. the Pool ID and root key match what the admin printed, and the token is valid;
  4. if the admin uses approval, it ran `meshctl certificate approve <name>`.
Run `meshctl doctor` for a diagnosis."""


def root_fingerprint(text: str) -> str:
    """A pinned root key: `sha256:<hex>` as printed, or the raw public key in hex."""
    text = text.strip().lower()
    if re.fullmatch(r"sha256:[0-9a-f]{64}", text):
        return text
    if re.fullmatch(r"[0-9a-f]{64}", text):
        return fingerprint(bytes.fromhex(text))
    raise CliError(
        "--pool-root-pubkey must be sha256:<64 hex digits> (as mesh pool-create prints it)"
    )


def parse_offer(text: str) -> int:
    """``--memory-offer``: a positive size, in bytes or with a unit; CliError if not."""
    size = positive_size(text)
    if size is None:
        raise CliError(f"--memory-offer {text!r} is not a positive size: use e.g. 8GiB or 512MiB")
    return size


def member_document(
    device: str,
    pool: str,
    pool_id: str,
    root: str,
    token_file: str | None,
    services: dict[str, str] | None = None,
    memory_offer: int | None = None,
) -> Member:
    name = object_name_from(device)
    spec: dict[str, object] = {"pool": {"name": pool, "id": pool_id, "rootFingerprint": root}}
    if token_file is not None:
        spec["tokenFile"] = token_file
    if memory_offer is not None:
        spec["capacity"] = {"memoryBytes": memory_offer}
    metadata = {"name": name, "annotations": services or {}}
    return Member.model_validate({"metadata": metadata, "spec": spec})


@friendly
def pool_join(
    ctx: typer.Context,
    pool_id: str = typer.Option(..., "--pool-id", help="The Pool ID the admin printed."),
    pool_root_pubkey: str = typer.Option(
        ..., "--pool-root-pubkey", help="The Pool Root Public Key (sha256:...)."
    ),
    name: str = typer.Option("test-pool", "--name", help="The pool's name."),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="MESHNET_JOIN_TOKEN",
        help="A join token. Prefer the MESHNET_JOIN_TOKEN environment variable or "
        "--token-file: a command line is visible to every local user.",
    ),
    token_file: Path | None = typer.Option(
        None, "--token-file", help="Read the join token from this file ('-': standard input)."
    ),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the certificate."),
    control_plane: str | None = typer.Option(
        None, "--control-plane", help="host:port of the pool's control plane (join fallback)."
    ),
    relay: str | None = typer.Option(None, "--relay", help="host:port of a relay of the pool."),
    weighting: str | None = typer.Option(None, "--weighting", help="The pool's ring weighting."),
    shard_columns: int | None = typer.Option(
        None, "--shard-columns", help="The pool's ring columns."
    ),
    memory_offer: str | None = typer.Option(
        None,
        "--memory-offer",
        help="Memory this device offers the pool (8GiB, 512MiB, or bytes): a job's share "
        "here takes at most this much (Member spec.capacity.memoryBytes). Default: what "
        "the device has free.",
    ),
) -> None:
    """Join a pool: request a certificate from its admin over the LAN."""
    offer = parse_offer(memory_offer) if memory_offer is not None else None
    device_home = home()
    node = load_node_config(device_home)
    root = root_fingerprint(pool_root_pubkey)
    token = _token_from(token, token_file, ctx.get_parameter_source("token"))
    stored_token = None
    if token:
        path = device_home.pool_dir(name) / "join.token"
        write_atomic(path, token.strip().encode() + b"\n", mode=0o600)
        stored_token = str(path)
    services = {
        CONTROL_PLANE_ANNOTATION: control_plane or "",
        RELAYS_ANNOTATION: relay or "",
        WEIGHTING_ANNOTATION: weighting or "",
        SHARD_COLUMNS_ANNOTATION: str(shard_columns or ""),
    }
    services = {k: v for k, v in services.items() if v}
    with open_store() as store:
        if offer is None:  # joining again without the option keeps the offer made before
            offer = _offered(store, object_name_from(node.name))
        member = member_document(node.name, name, pool_id, root, stored_token, services, offer)
        store.apply(member)
        if read_pool_info(device_home, name) is not None:
            console.print(f"Already a member of {name} ({pool_id}).")
            return
        console.print(
            f"This device's key fingerprint: {node.fingerprint} (an admin who approves "
            "requests by hand confirms it)",
            highlight=False,
            markup=False,
        )
        if running_pid(device_home.agent_lock):
            joined = _wait_for_agent(store, member.metadata.name, timeout)
        else:
            joined = _join_here(device_home, store, member, timeout)
    if not joined:
        err_console.print(TROUBLESHOOTING, highlight=False, markup=False)
        raise typer.Exit(1)
    info = read_pool_info(device_home, name)
    assert info is not None
    console.print(
        f"Joined pool [bold]{name}[/bold] ({info.pool_id}); start the agent with `mesh start`."
    )


def _offered(store: Store, member: str) -> int | None:
    obj = store.get("Member", member)
    return obj.spec.capacity.memory_bytes if isinstance(obj, Member) else None


def _token_from(token: str | None, token_file: Path | None, source: object) -> str | None:
    """The join token from --token-file, the environment or (warned) the command line."""
    if token_file is not None:
        try:
            text = sys.stdin.read() if str(token_file) == "-" else token_file.read_text()
        except OSError as err:
            raise CliError(f"cannot read the token file {token_file}: {err.strerror}") from err
        return text.strip() or None
    if token and getattr(source, "name", "") == "COMMANDLINE":
        err_console.print(
            "note: a token on the command line is visible to other local users (ps); "
            "prefer MESHNET_JOIN_TOKEN=... or --token-file",
            highlight=False,
            markup=False,
        )
    return token


def _progress(store: Store, member: str, started: float) -> str:
    state = store.get_observed(join_key(member)) or {}
    reason = state.get("reason") or "starting"
    return f"waiting for the admin's certificate ({time.monotonic() - started:.0f}s): {reason}"


def _denied(store: Store, member: str) -> str | None:
    """The admin's reason when it refused us (the request goes on being retried)."""
    state = store.get_observed(join_key(member)) or {}
    return str(state.get("reason") or "denied") if state.get("state") == "denied" else None


def _wait_for_agent(store: Store, member: str, timeout: float) -> bool:
    """Show the agent's join until the Member is Joined (True) or the timeout (False).
    The agent pushes each change of the store (its local API's ``watch``; the join's
    progress is observed state that moves the revision); an agent without that op is
    read every POLL_SECONDS."""
    started = time.monotonic()
    client = AgentClient(Home(store.path.parent).agent_socket)
    with console.status(_progress(store, member, started)) as status:
        try:
            stream = client.watch(idle=TICK_SECONDS)
        except NoAgent:
            stream = None
        try:
            while (left := timeout - (time.monotonic() - started)) > 0:
                if _joined(store, member):
                    return True
                status.update(_progress(store, member, started))
                if stream is None:
                    time.sleep(min(POLL_SECONDS, left))
                else:
                    stream.next_event()  # a change, or a tick of the elapsed seconds
        except AgentGone as err:
            raise CliError(f"the agent stopped while this device joined: {err}") from err
        finally:
            if stream is not None:
                stream.close()
    return False


def _joined(store: Store, member: str) -> bool:
    """Whether the Member is Joined; CliError when the admin refused it."""
    obj = store.get("Member", member)
    if isinstance(obj, Member) and obj.status.phase == "Joined":
        return True
    if (reason := _denied(store, member)) is not None:
        raise CliError(f"the admin refused this device: {reason}")
    return False


def _join_here(device_home: Home, store: Store, member: Member, timeout: float) -> bool:
    """No agent runs: a short-lived join runtime in this process (the agent's code,
    through meshctl/ports.py) until the certificate arrives or the timeout."""
    name = member.metadata.name
    started = time.monotonic()
    with console.status(_progress(store, name, started)) as status:

        def tick() -> None:
            if (reason := _denied(store, name)) is not None:
                raise CliError(f"the admin refused this device: {reason}")
            status.update(_progress(store, name, started))

        return agent_side().join_here(device_home, store, member, timeout, tick)
