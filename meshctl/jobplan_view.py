"""What `meshctl describe job` adds: the plan the job ran under, why, the predicted and
the measured tokens/s, the wire format, speculative rounds and each member's share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.markup import escape

from meshctl.render import console
from reconciler.textsafe import printable


def plan_lines(status: dict[str, Any]) -> list[str]:
    """Lines of the plan section of a Job's status document (camelCase keys); [] while
    the job has no plan yet."""
    plan = status.get("plan")
    if not isinstance(plan, dict) or not plan.get("kind"):
        return []
    rows = [
        ("Kind", plan["kind"]),
        ("Why", plan.get("reason") or "-"),
        (
            "Tokens/s",
            f"predicted {_rate(plan.get('predictedTokensPerSecond'))}, "
            f"measured {_rate(status.get('tokensPerSecond'))}",
        ),
        ("Wire", plan.get("wire") or "-"),
    ]
    others = plan.get("alternatives") or {}
    if isinstance(others, dict) and others:
        listed = ", ".join(f"{k} {_rate(v)}" for k, v in sorted(others.items()))
        rows.append(("Predicted", f"{listed} tok/s"))
    rounds, per_round = status.get("decodeRounds"), status.get("tokensPerRound")
    if rounds:
        rows.append(("Rounds", f"{rounds} decode passes, {_rate(per_round)} tokens per pass"))
    members = [m for m in status.get("members") or [] if isinstance(m, dict)]
    rows.extend((printable(str(m.get("nodeId", "-"))), _share(m)) for m in members)
    return [f"  {key + ':':<11} {printable(str(value), 1000)}" for key, value in rows]


def _share(member: dict[str, Any]) -> str:
    layers, columns = member.get("layers"), member.get("columns")
    share = (
        f"layers {layers[0]}-{layers[1]}"
        if isinstance(layers, list) and len(layers) == 2
        else f"columns {columns[0]}-{columns[1]}"
        if isinstance(columns, list) and len(columns) == 2
        else "-"
    )
    return share


def _rate(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) and value else "-"


def describe_job_extras(status: dict[str, Any]) -> Callable[[], None] | None:
    """Prints the plan section after the status, or None when there is none."""
    lines = plan_lines(status)
    if not lines:
        return None

    def show() -> None:
        console.print("[bold]Plan:[/bold]")
        for line in lines:
            console.print(escape(line), highlight=False)

    return show
