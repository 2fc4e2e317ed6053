"""What the coordinator is asked to run and what it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.gossip.ring import Ring
from reconciler.inference.sampling import SamplingParams
from reconciler.jobs.messages import MemberStats
from reconciler.placement.ringplan import JobPlan


@dataclass(frozen=True)
class JobRequest:
    """One job for :meth:`JobService.run`: prompt already tokenized, ring already converged."""

    job_id: str
    model_ref: str
    prompt_ids: tuple[int, ...] | list[int]
    sampling: SamplingParams
    ring: Ring
    model_path: str | None = None  # the coordinator's own copy (model_ref is offered)
    wire: str = "f32"  # all-reduce contributions on the wire: "f32" or "q80"
    parallelism: str = "auto"  # auto | tensor | pipeline | single (Job.spec.parallelism)


@dataclass(frozen=True)
class JobResult:
    """A finished job, with the figures ``Job.status`` shows."""

    job_id: str
    token_ids: list[int]
    output: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    tokens_per_second: float | None  # decode: tokens after the first / their step time
    prefill_tokens_per_second: float | None
    time_to_first_token_ms: float  # from START (all slices resident) to the first token
    load_ms: float  # from the offer to every member ready
    prefill_ms: float
    decode_ms: float
    members: list[MemberStats]  # rank order
    ring_epoch: int
    ring_hash: str
    missing_stats: list[str] = field(default_factory=list)  # members whose DONE never came
    plan: JobPlan | None = None
    wire: str = "auto"
    decode_rounds: int = 0  # forward passes after the prefill (TokenEvent.round of the last)
    layers: list[tuple[int, int]] = field(default_factory=list)  # per member (pipeline)

    @property
    def tokens_per_round(self) -> float | None:
        """Tokens after the first per decode pass: 1 without speculative decoding, more
        when drafts were accepted (None before any decode pass)."""
        if self.decode_rounds <= 0:
            return None
        return (self.completion_tokens - 1) / self.decode_rounds

    def status_fields(self) -> dict[str, Any]:
        """Field names and values of ``manifests.job.JobStatus`` (snake_case)."""
        return {
            "output": self.output,
            "token_ids": list(self.token_ids),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens_per_second": self.tokens_per_second,
            "time_to_first_token_ms": self.time_to_first_token_ms,
            "members": [
                {
                    "node_id": m.node_id,
                    "columns": [m.start, m.end],
                    "compute_ms": m.compute_ms,
                    "comm_ms": m.comm_ms,
                    "bytes_sent": m.bytes_sent,
                    **({"layout": m.layout} if m.layout else {}),
                    **({"layers": list(self.layers[i])} if i < len(self.layers) else {}),
                }
                for i, m in enumerate(self.members)
            ],
            "decode_rounds": self.decode_rounds,
            "tokens_per_round": self.tokens_per_round,
            **({"plan": plan_status(self.plan, self.wire)} if self.plan is not None else {}),
        }


def plan_status(plan: JobPlan, wire: str) -> dict[str, Any]:
    """``manifests.job.JobPlanStatus`` of a plan (camelCase keys)."""
    predicted = plan.predicted_tok_s
    return {
        "kind": plan.kind,
        "reason": plan.reason,
        "wire": wire,
        "predictedTokensPerSecond": round(predicted, 2) if predicted is not None else None,
        "alternatives": dict(plan.alternatives),
    }


def layout_note(members: Sequence[MemberStats], expected: str) -> str | None:
    """A Job event's message when members held their shares in another layout than
    ``expected`` (what the coordinator's settings ask for: ``int8``, ``exact``, ``ggml``
    or ``numpy``), else None. A member picks ggml or exact where int8's layout would not
    fit its free memory (unless told which to use), and numpy where onnxruntime is
    missing."""
    other = [m for m in members if m.layout and m.layout != expected]
    if not other:
        return None
    held = ", ".join(f"{m.node_id} in the {m.layout} layout" for m in other)
    return (
        f"not every member held its share as {expected}: {held} (its free memory or its "
        "settings decided; see its log)"
    )
