"""How long a job's prompt may be, checked when the job is submitted (pure).

Three limits bound a job before any member loads anything:

- the model's context: prompt tokens + max tokens must fit in ``config.max_seq``
  positions (the KV cache is sized to exactly that sum);
- the JOB_OFFER control message carries the prompt's token ids as JSON inside one
  ``messages.MAX_MESSAGE`` message: at most 11 bytes an id (10 digits and a comma);
- with more than one member, a prefill step all-reduces a ``[T, D]`` float32 tensor in
  one TENSOR frame of at most ``frames.MAX_FRAME`` bytes, so a step holds at most
  ``MAX_FRAME / (4 D)`` tokens. ``prefill_chunk`` (tokens per prefill step, when the
  engine prefills in chunks) lifts this limit once a chunk fits in a frame.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.frames import MAX_FRAME
from reconciler.inference.config import ModelConfig
from reconciler.jobs.messages import MAX_MESSAGE

ID_BYTES = 11  # one prompt id in the offer's JSON: up to 10 digits and a comma
OFFER_RESERVE = 64 * 1024  # the rest of the offer: members, ring hash, sampling, stop strings
TENSOR_RESERVE = 1024  # session, wire header and shape, frame channel byte


@dataclass(frozen=True)
class PromptLimits:
    """The limits that apply to one job."""

    context: int  # prompt + generated tokens the model can attend over
    offer_tokens: int  # prompt tokens one JOB_OFFER message can carry
    step_tokens: int | None  # prompt tokens one prefill step can send; None: no limit


def prompt_limits(
    config: ModelConfig, world_size: int = 1, prefill_chunk: int | None = None
) -> PromptLimits:
    """The limits for ``config`` run on ``world_size`` members."""
    offer = (MAX_MESSAGE - OFFER_RESERVE) // ID_BYTES
    step = (MAX_FRAME - TENSOR_RESERVE) // (4 * config.dim)
    if world_size <= 1 or (prefill_chunk is not None and prefill_chunk <= step):
        return PromptLimits(config.max_seq, offer, None)
    return PromptLimits(config.max_seq, offer, step)


def prompt_problem(
    prompt_tokens: int,
    max_tokens: int,
    config: ModelConfig,
    world_size: int = 1,
    prefill_chunk: int | None = None,
) -> str | None:
    """Why a job of ``prompt_tokens`` + ``max_tokens`` cannot run, naming the limit; or None."""
    limits = prompt_limits(config, world_size, prefill_chunk)
    if prompt_tokens + max_tokens > limits.context:
        return (
            f"the prompt of {prompt_tokens} tokens plus maxTokens {max_tokens} is "
            f"{prompt_tokens + max_tokens} tokens, beyond the model's context of "
            f"{limits.context} tokens: shorten the prompt or lower maxTokens"
        )
    if prompt_tokens > limits.offer_tokens:
        return (
            f"the prompt of {prompt_tokens} tokens is beyond the job frame limit of "
            f"{limits.offer_tokens} prompt tokens (one {MAX_MESSAGE}-byte job offer)"
        )
    if limits.step_tokens is not None and prompt_tokens > limits.step_tokens:
        return (
            f"the prompt of {prompt_tokens} tokens is beyond the job frame limit of "
            f"{limits.step_tokens} prompt tokens on {world_size} members (a prefill step of "
            f"{config.dim}-wide activations in one {MAX_FRAME}-byte tensor frame)"
        )
    return None


def cache_len(prompt_tokens: int, max_tokens: int, config: ModelConfig) -> int:
    """KV cache positions a job needs: prompt + max tokens, capped by the context."""
    return max(1, min(prompt_tokens + max_tokens, config.max_seq))
