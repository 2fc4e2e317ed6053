"""Jobs after the fact: `mesh inference-stats` and `meshctl logs job/NAME [-f]`."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from typing import Any

import typer

from manifests import Job
from meshctl.context import CliError, friendly, open_store
from meshctl.inference_cmd import follow_job
from meshctl.render import console, emit, table


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def job_stats(jobs: list[Job]) -> dict[str, Any]:
    """Count, medians and per-member sums over finished jobs."""
    done = [j for j in jobs if j.status.phase == "Succeeded"]
    members: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for job in done:
        for member in job.status.members:
            row = members[member.node_id]
            row["jobs"] += 1
            row["computeMs"] += member.compute_ms
            row["commMs"] += member.comm_ms
            row["bytesSent"] += member.bytes_sent
    return {
        "jobs": len(jobs),
        "succeeded": len(done),
        "failed": sum(1 for j in jobs if j.status.phase == "Failed"),
        "tokens": sum(j.status.completion_tokens or 0 for j in done),
        "tokensPerSecondP50": _median(
            [j.status.tokens_per_second for j in done if j.status.tokens_per_second]
        ),
        "timeToFirstTokenMsP50": _median(
            [
                j.status.time_to_first_token_ms
                for j in done
                if j.status.time_to_first_token_ms is not None
            ]
        ),
        "members": {node: dict(row) for node, row in members.items()},
    }


@friendly
def inference_stats(
    last: int = typer.Option(50, "--last", min=1, help="How many of the latest jobs."),
    output: str = typer.Option("text", "-o", "--output", help="text or json."),
) -> None:
    """Summarise recent jobs: count, tokens/s p50, time to first token p50, per member."""
    with open_store() as store:
        jobs = [j for j in store.list("Job") if isinstance(j, Job)]
    jobs.sort(key=lambda j: str(j.metadata.creation_timestamp or ""))
    stats = job_stats(jobs[-last:])
    if output == "json":
        emit(json.dumps(stats, indent=2))
        return
    tps, ttft = stats["tokensPerSecondP50"], stats["timeToFirstTokenMsP50"]
    console.print(
        f"{stats['jobs']} job(s): {stats['succeeded']} succeeded, {stats['failed']} failed, "
        f"{stats['tokens']} tokens; tokens/s p50 {tps:.1f}; first token p50 {ttft:.0f} ms"
        if tps is not None and ttft is not None
        else f"{stats['jobs']} job(s), none succeeded yet",
        highlight=False,
    )
    rows = [[node, int(r["jobs"]), f"{r['computeMs'] / r['jobs']:.0f}", f"{r['commMs'] / r['jobs']:.0f}",
             int(r["bytesSent"] / r["jobs"])] for node, r in stats["members"].items()]  # fmt: skip
    if rows:
        console.print(table(rows, ["MEMBER", "JOBS", "COMPUTE MS/JOB", "COMM MS/JOB", "BYTES/JOB"]))


@friendly
def logs(
    target: str = typer.Argument(..., help="job/NAME"),
    follow: bool = typer.Option(False, "-f", "--follow", help="Stream tokens until the job ends."),
) -> None:
    """Print a job's generated text (`-f`: as it comes)."""
    kind, _, name = target.partition("/")
    if kind not in ("job", "jobs") or not name:
        raise CliError("logs takes job/NAME")
    with open_store() as store:
        if follow:
            status = follow_job(store, name, quiet=False)
            console.print()
            if status.get("phase") == "Failed":
                raise CliError(f"{status.get('failureReason')}: {status.get('failureMessage')}")
            return
        job = store.require("Job", name)
    console.print((job.status.model_dump().get("output") or ""), markup=False, highlight=False)
