"""`meshctl doctor` (and `mesh doctor`): what works, what does not, and why."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from manifests import Member, Pool
from meshctl.context import friendly, home, open_store
from meshctl.doctor_checks import check_pool
from meshctl.doctor_findings import Finding
from meshctl.render import console, emit, markup_escape
from reconciler.node import NodeError, load_node_config
from reconciler.observed import join_key
from reconciler.singleton import running_pid
from reconciler.store import Store

MARK = {"ok": "[green]✓[/green]", "warn": "[yellow]![/yellow]", "fail": "[red]✗[/red]"}


def verdict(findings: list[Finding]) -> list[str]:
    """Likely causes, from the findings (most telling first)."""
    causes = []
    text = {f.topic: f.message for f in findings}
    for finding in findings:
        if finding.topic == "node" and finding.level == "fail":
            return ["this device has no identity: run `mesh init --network-id ID --name NAME`"]
        if finding.topic == "agent" and finding.level == "fail":
            causes.append(
                "the agent is not running: start it with `mesh start` (or `meshctl agent`)"
            )
    beacons = text.get("beacons", "")
    met = any(f.topic == "discovery" and f.message.startswith("rendezvous: met") for f in findings)
    if "from 0 peer(s)" in beacons and "sent 0," not in beacons and met:
        causes.append(
            "hearing no beacons (multicast is probably blocked here), but the rendezvous at "
            "the relay or control plane found the pool's members: nothing to fix"
        )
    elif "from 0 peer(s)" in beacons and "sent 0," not in beacons:
        causes.append(
            "sending beacons but hearing none: multicast is probably blocked (client "
            "isolation on the access point, or a firewall on UDP 42424); add staticPeers "
            "to the Pool or use the relay"
        )
    if any(f.topic == "peer" and f.level != "ok" for f in findings):
        causes.append(
            "clocks disagree: enable time synchronisation (NTP); beacons more than 120 s off are dropped"
        )
    if any(f.topic == "link" and f.level != "ok" for f in findings):
        causes.append(
            "peers are heard but their links fail: a firewall may block TCP; add a relay to the Pool"
        )
    if any(f.topic == "dropped" for f in findings):
        causes.append(
            "some beacons were refused (see 'dropped'): another pool, a revoked or stale member, or tampering"
        )
    if any(f.topic in ("relay", "control plane") and f.level == "fail" for f in findings):
        causes.append(
            "a relay or the control plane named by the Pool is unreachable: is it running there?"
        )
    if any(f.topic == "ring" and f.message.startswith("not converged") for f in findings):
        causes.append(
            "the ring does not converge: every device must use the same Pool ring settings "
            "(shardColumns, weighting); apply the same pool.yaml everywhere or pass "
            "--weighting/--shard-columns to mesh pool-join"
        )
    if any(f.topic == "certificate" and f.level != "ok" for f in findings):
        causes.append(
            "the certificate is missing or expiring: keep the agent running so it can renew it"
        )
    return causes or ["no problem found"]


def _device_findings(store: Store) -> list[Finding]:
    found = []
    try:
        node = load_node_config(home())
        found.append(
            Finding("ok", "node", f"{node.name} {node.node_id} (network {node.network_id})")
        )
    except NodeError as err:
        return [Finding("fail", "node", str(err))]
    pid = running_pid(home().agent_lock)
    found.append(
        Finding("ok", "agent", f"running (pid {pid})")
        if pid
        else Finding("fail", "agent", "not running")
    )
    for member in store.list("Member"):
        if (
            isinstance(member, Member)
            and member.status.phase not in ("Joined", None)
            and member.status.node_id is None
        ):
            join = store.get_observed(join_key(member.metadata.name)) or {}
            found.append(Finding("warn", "join", f"{member.metadata.name}: {member.status.phase}, "
                                                 f"{join.get('reason', 'no answer yet')}"))  # fmt: skip
    return found


@friendly
def doctor(output: str = typer.Option("text", "-o", "--output", help="text or json.")) -> None:
    """Diagnose discovery, certificates, links and services, then say what is likely wrong."""
    with open_store() as store:
        sections: list[tuple[str, list[Finding]]] = [("device", _device_findings(store))]
        for pool in store.list("Pool"):
            assert isinstance(pool, Pool)
            sections.append((f"pool {pool.metadata.name}", check_pool(home(), store, pool)))
    findings = [f for _, items in sections for f in items]
    causes = verdict(findings)
    if output == "json":
        data = {
            "sections": {name: [asdict(f) for f in items] for name, items in sections},
            "verdict": causes,
        }
        emit(json.dumps(data, indent=2))
        return
    for name, items in sections:
        console.print(f"[bold]{name}[/bold]")
        for finding in items:
            console.print(
                f"  {MARK[finding.level]} {finding.topic:13s} {markup_escape(finding.message)}",
                highlight=False,
            )
    console.print("[bold]verdict[/bold]")
    for cause in causes:
        console.print(f"  - {markup_escape(cause)}", highlight=False)
    if any(f.level == "fail" for f in findings):
        raise typer.Exit(1)
