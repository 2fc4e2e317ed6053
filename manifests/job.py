"""The Job kind: one inference request run across a pool's ring."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from manifests.base import (
    BaseStatus,
    LenientModel,
    ObjectMeta,
    ObjectName,
    StrictModel,
)

JobPhase = Literal["Pending", "Scheduled", "Running", "Succeeded", "Failed"]
Parallelism = Literal["auto", "tensor", "pipeline", "single"]
WireFormat = Literal["auto", "f32", "q80"]


class ChatMessage(StrictModel):
    """One turn of a chat, rendered with the model's chat template."""

    role: Literal["system", "user", "assistant"] = Field(description="Who speaks.")
    content: str = Field(description="What they say.")


class JobSpec(StrictModel):
    """What the user wants computed."""

    pool: ObjectName = Field(description="Name of the pool to run on.")
    model: str = Field(
        default="demo",
        min_length=1,
        description="Path to a GGUF file or Hugging Face model directory, or 'demo'.",
    )
    prompt: str | None = Field(default=None, description="Raw text to continue (no template).")
    messages: list[ChatMessage] | None = Field(
        default=None, description="Chat input, rendered with the model's chat template."
    )
    max_tokens: int = Field(default=16, ge=1, le=32768, description="Tokens to generate.")
    temperature: float = Field(default=0.0, ge=0.0, le=10.0, description="0 means greedy.")
    top_k: int | None = Field(default=None, ge=1, description="Sample from the k likeliest.")
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, description="Nucleus sampling.")
    seed: int | None = Field(default=None, ge=0, description="Seed for sampling.")
    stop: list[str] = Field(default_factory=list, description="Stop when one is generated.")
    presence_penalty: float = Field(
        default=0.0, ge=-2.0, le=2.0, description="OpenAI's: lowers tokens already generated."
    )
    frequency_penalty: float = Field(
        default=0.0, ge=-2.0, le=2.0, description="OpenAI's: lowers tokens by how often generated."
    )
    repetition_penalty: float = Field(
        default=1.0, gt=0.0, le=10.0, description="Divides logits of tokens seen (1 = off)."
    )
    draft_tokens: int = Field(
        default=0,
        ge=0,
        le=16,
        description="Greedy only: tokens drafted by prompt lookup and verified per pass (0 = off).",
    )
    parallelism: Parallelism = Field(
        default="auto",
        description=(
            "How the job is split over the pool: 'auto' (the planner picks the fastest"
            " plan from measured links, speeds and memory), 'tensor' (column ranges of"
            " every matrix), 'pipeline' (contiguous layer ranges), or 'single' (the"
            " coordinator alone)."
        ),
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        le=10 * 365 * 86400,
        description=(
            "Delete the Job this many seconds after it succeeds or fails (unset: keep it"
            " until deleted). Jobs made by the OpenAI-compatible API get 3600."
        ),
    )
    wire: WireFormat = Field(
        default="auto",
        description=(
            "Format of partial results on the wire: 'f32', 'q80' (8-bit blocks with a"
            " scale, about 3.8x fewer bytes), or 'auto' (q80 when the member's activations"
            " are int8, f32 in exact mode)."
        ),
    )

    @model_validator(mode="after")
    def _one_input(self) -> JobSpec:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt or messages")
        return self


class JobMemberStatus(LenientModel):
    """One member's share of a job."""

    node_id: str = Field(description="The member's node ID.")
    columns: list[int] = Field(default_factory=list, description="[start, end) of its columns.")
    compute_ms: float = Field(default=0.0, description="Time spent computing.")
    comm_ms: float = Field(default=0.0, description="Time spent in collectives.")
    bytes_sent: int = Field(default=0, description="Bytes sent to other members.")
    layers: list[int] = Field(
        default_factory=list, description="[start, end) of its decoder layers (pipeline)."
    )
    layout: str | None = Field(
        default=None,
        description="How it held its weights: 'int8' or 'exact' (onnxruntime's layouts for "
        "int8 or float32 activations) or 'numpy'. A member short of memory for int8 holds "
        "'exact' when nobody chose the activations.",
    )


class JobPlanStatus(LenientModel):
    """The plan a job runs under, as the coordinator chose it."""

    kind: str = Field(description="single, tensor or pipeline.")
    reason: str = Field(default="", description="Why the planner chose it.")
    wire: str = Field(default="auto", description="Format of partial results on the wire.")
    predicted_tokens_per_second: float | None = Field(
        default=None, description="Decode speed the planner predicted (None: unmeasured)."
    )
    alternatives: dict[str, float] = Field(
        default_factory=dict, description="Predicted tok/s of every plan that fits."
    )


class JobStatus(BaseStatus):
    """What the agent observed of a job."""

    phase: JobPhase | None = Field(default=None, description="Where the job is.")
    output: str | None = Field(default=None, description="Generated text.")
    token_ids: list[int] = Field(default_factory=list, description="Generated token ids.")
    prompt_tokens: int | None = Field(default=None, description="Tokens in the prompt.")
    completion_tokens: int | None = Field(default=None, description="Tokens generated.")
    tokens_per_second: float | None = Field(default=None, description="Decode speed.")
    time_to_first_token_ms: float | None = Field(default=None, description="Latency.")
    decode_rounds: int | None = Field(
        default=None, description="Forward passes after the prefill (distributed rounds)."
    )
    tokens_per_round: float | None = Field(
        default=None, description="Tokens per decode pass: above 1 when drafts were accepted."
    )
    members: list[JobMemberStatus] = Field(default_factory=list, description="Per member.")
    plan: JobPlanStatus | None = Field(default=None, description="The plan the job runs under.")
    completion_time: str | None = Field(
        default=None,
        description="When the agent saw the job succeed or fail (RFC 3339, UTC).",
    )
    prompt_token_ids: list[int] | None = Field(
        default=None, description="The prompt's token ids, as the coordinator tokenised it."
    )
    load_progress: dict[str, float] | None = Field(
        default=None, description="Fraction of its slice each member has loaded, by node ID."
    )
    finish_reason: str | None = Field(
        default=None, description="Why generation stopped: eos, stop or length."
    )
    failure_reason: str | None = Field(
        default=None, description="CamelCase reason of a failure, e.g. Cancelled or MemberLost."
    )
    failure_message: str | None = Field(
        default=None, description="Human-readable explanation of a failure."
    )


class Job(StrictModel):
    """An inference job."""

    api_version: Literal["meshnet.dev/v1alpha1"] = Field(
        default="meshnet.dev/v1alpha1", description="Always meshnet.dev/v1alpha1."
    )
    kind: Literal["Job"] = Field(default="Job", description="Always Job.")
    metadata: ObjectMeta = Field(description="Name, labels and bookkeeping.")
    spec: JobSpec = Field(description="What the user wants.")
    status: JobStatus = Field(
        default_factory=JobStatus, description="Written by the agent; ignored on apply."
    )
