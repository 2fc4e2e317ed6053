"""Pool administration on the admin device: join tokens, approvals, revocation."""

from __future__ import annotations

import json
import sys
import time

import typer

from manifests import Member, Pool
from manifests.durations import parse_duration
from meshctl.context import CliError, friendly, home, open_store
from meshctl.render import console, emit, err_console, table
from reconciler.pools import load_root
from reconciler.store import Store
from reconciler.store_admin import (
    delete_token,
    issue_token,
    record_revocation,
    set_approval,
    tokens,
)

token_app = typer.Typer(
    help="Join tokens (kubeadm style: abcdef.0123456789abcdef).", no_args_is_help=True
)
certificate_app = typer.Typer(help="Approve or deny pending join requests.", no_args_is_help=True)
member_app = typer.Typer(help="Members of a pool this device administers.", no_args_is_help=True)


def admin_pool(store: Store, name: str | None) -> Pool:
    """The pool this device administers (the only one, or the one named)."""
    pools = [p for p in store.list("Pool") if isinstance(p, Pool) and p.status.role == "admin"]
    if name is not None:
        pools = [p for p in pools if p.metadata.name == name]
    if not pools:
        where = f"named {name!r} " if name else ""
        raise CliError(
            f"this device administers no Ready pool {where}(mesh pool-create --name NAME)"
        )
    if len(pools) > 1:
        names = ", ".join(p.metadata.name for p in pools)
        raise CliError(f"this device administers several pools ({names}); choose one with --pool")
    return pools[0]


POOL_OPTION = typer.Option(
    None, "--pool", help="Pool name (default: the one this device administers)."
)


@token_app.command("create")
@friendly
def token_create(
    ttl: str = typer.Option("24h", "--ttl", help="How long the token is valid, e.g. 30m, 24h."),
    usages: int | None = typer.Option(None, "--usages", min=1, help="How many joins it allows."),
    description: str = typer.Option("", "--description", help="A note for `token list`."),
    pool: str | None = POOL_OPTION,
    output: str = typer.Option("text", "-o", "--output", help="text or json."),
) -> None:
    """Make a join token; it is shown once and only its key is stored."""
    seconds = _duration(ttl)
    with open_store() as store:
        target = admin_pool(store, pool)
        token, record = issue_token(store, target.metadata.name, seconds, usages, description)
    if output == "json":
        emit(json.dumps({"token": token, "pool": target.metadata.name, "expires": record.expires,
                         "usages": usages}))  # fmt: skip
    else:
        emit(token)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise CliError(str(err)) from err


@token_app.command("list")
@friendly
def token_list(
    pool: str | None = POOL_OPTION, output: str = typer.Option("table", "-o", "--output")
) -> None:
    """List join tokens (their IDs; the secrets are never stored)."""
    with open_store() as store:
        found = tokens(store, pool)
    now = time.time()
    items = [{"tokenId": t.record.token_id, "pool": t.pool, "expires": t.record.expires,
              "usagesLeft": t.record.usages_left, "description": t.record.description,
              "usable": t.record.unusable_reason(now) is None} for t in found]  # fmt: skip
    if output == "json":
        emit(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2))
        return
    if not items:
        err_console.print("No tokens found.")
        return
    rows = [
        [t.record.token_id, t.pool, _remaining(t.record.expires - now),
         _usages(t.record.usages_left), t.record.description]
        for t in found
    ]  # fmt: skip
    console.print(table(rows, ["TOKEN ID", "POOL", "TTL", "USAGES LEFT", "DESCRIPTION"]))


def _remaining(seconds: float) -> str:
    if seconds <= 0:
        return "expired"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60)}m"


def _usages(left: int | None) -> str:
    return "unlimited" if left is None else str(left)


@token_app.command("delete")
@friendly
def token_delete(
    token_id: str = typer.Argument(..., help="The token, or its ID (the part before the dot)."),
) -> None:
    """Delete a join token."""
    with open_store() as store:
        if not delete_token(store, token_id.split(".")[0]):
            raise CliError(f"no token {token_id.split('.')[0]!r}")
    console.print(f"token {token_id.split('.')[0]} deleted", highlight=False)


def _member(store: Store, name: str) -> Member:
    obj = store.get("Member", name)
    if not isinstance(obj, Member):
        raise CliError(f"no Member named {name!r} (meshctl get members)")
    if obj.status.node_id is None:
        raise CliError(f"Member {name!r} has no node ID yet: it is not a join request")
    return obj


def _decide(name: str, state: str, fingerprint: str | None = None) -> None:
    with open_store() as store:
        member = _member(store, name)
        if member.status.phase not in (None, "Pending", "Denied", "Approved"):
            raise CliError(f"Member {name!r} is {member.status.phase}, not pending")
        assert member.status.node_id is not None
        if state == "approved":
            _confirm_key(name, member.status.key_fingerprint or "", fingerprint)
        set_approval(store, member.spec.pool.name, member.status.node_id, state)
        store.record_event("Member", name, "Normal", state.capitalize(), f"{state} by the admin")
    console.print(f"certificate request {name} {state}", highlight=False)


MIN_FINGERPRINT_HEX = 16


def _interactive() -> bool:
    return sys.stdin.isatty()


def fingerprint_matches(given: str, recorded: str) -> bool:
    """``given`` names ``recorded``: the whole sha256:HEX, or at least 16 of its first
    hex digits (with or without the sha256: prefix, any case, colons ignored)."""
    wanted = given.strip().lower().removeprefix("sha256:").replace(":", "")
    actual = recorded.lower().removeprefix("sha256:")
    return len(wanted) >= MIN_FINGERPRINT_HEX and bool(actual) and actual.startswith(wanted)


def _confirm_key(name: str, recorded: str, given: str | None) -> None:
    """The admin confirms the requester's key, so a squatter cannot take a device's name."""
    if not recorded:
        raise CliError(f"Member {name!r} has no key fingerprint recorded; it cannot be approved")
    if given is not None:
        if not fingerprint_matches(given, recorded):
            raise CliError(
                f"the request {name!r} is from key {recorded}, not {given.strip()}: another "
                "device may have taken this name (meshctl certificate deny " + name + ")"
            )
        return
    hint = (
        f"the request {name!r} is from key {recorded}; compare it with the Fingerprint that "
        "`mesh init` printed on that device"
    )
    if not _interactive():
        raise CliError(f"{hint}, then run: meshctl certificate approve {name} --fingerprint "
                       f"{recorded}")  # fmt: skip
    console.print(hint, highlight=False, markup=False)
    if not typer.confirm("Is it the same key?", default=False):
        raise CliError("not approved")


@certificate_app.command("approve")
@friendly
def certificate_approve(
    name: str = typer.Argument(..., help="The pending Member's name."),
    fingerprint: str | None = typer.Option(
        None,
        "--fingerprint",
        help="The requester's key fingerprint, as `mesh init` printed it on the device "
        "(sha256:..., or its first 16+ hex digits). Without it, asked interactively.",
    ),
) -> None:
    """Approve a pending join request: the agent answers it with a certificate.

    The request's key fingerprint must be confirmed (--fingerprint, or at the prompt):
    the name of a request is chosen by whoever sent it."""
    _decide(name, "approved", fingerprint)


@certificate_app.command("deny")
@friendly
def certificate_deny(name: str = typer.Argument(..., help="The pending Member's name.")) -> None:
    """Deny a pending join request."""
    _decide(name, "denied")


@member_app.command("revoke")
@friendly
def member_revoke(
    name: str = typer.Argument(..., help="The Member to revoke."),
    reason: str = typer.Option("revoked by the admin", "--reason", help="Why (kept in the list)."),
) -> None:
    """Revoke a member: its key is refused everywhere, and it cannot rejoin with it."""
    with open_store() as store:
        member = _member(store, name)
        fingerprint = member.status.key_fingerprint
        if fingerprint is None:
            raise CliError(f"Member {name!r} has no key fingerprint recorded")
        root = load_root(home(), member.spec.pool.name)
        record_revocation(store, root, fingerprint, time.time(), reason)
        store.record_event("Member", name, "Warning", "Revoked", reason)
    console.print(f"member {name} revoked ({fingerprint})", highlight=False)
