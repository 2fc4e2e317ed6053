"""A Job's prompt as token ids, and whether it fits the model and the job frames.

Read by the job runner (the ids it offers to the ring) and by the control plane (to
refuse, at submission, a prompt that cannot run).
"""

from __future__ import annotations

from pathlib import Path

from manifests import Job
from reconciler.home import Home
from reconciler.inference.errors import ModelError
from reconciler.inference.tokenizer import Tokenizer
from reconciler.jobs.limits import prompt_problem
from reconciler.jobs.shards import ShardCache
from reconciler.models import SUBMITTED_BY, ModelRefused, job_model

_INFOS = ShardCache()  # model infos for submission checks (a GGUF's metadata takes seconds)


def prompt_ids(job: Job, path: Path, cache: ShardCache = _INFOS) -> list[int]:
    try:
        info = cache.info(path)
    except OSError as err:  # gone since the controller looked
        raise ModelError(path, str(err)) from err
    return encode_prompt(job, info.tokenizer)


def encode_prompt(job: Job, tokenizer: Tokenizer) -> list[int]:
    """The Job's prompt (or chat messages, through the chat template) as token ids."""
    if job.spec.messages is not None:
        messages = [m.model_dump() for m in job.spec.messages]
        return tokenizer.encode(tokenizer.apply_chat_template(messages), add_special=False)
    return tokenizer.encode(job.spec.prompt or "")


def job_prompt_problem(job: Job, world_size: int = 1, home: Home | None = None) -> str | None:
    """Why the Job's prompt + maxTokens cannot run on ``world_size`` members (the model's
    context, the job frame limits), or None. Reads the model's metadata and tokenizer,
    never its weights; a model that cannot be read here is None (ModelUnavailable says so).
    The model is looked up as the coordinator of ``home`` (default: this device) will."""
    submitted = SUBMITTED_BY in job.metadata.annotations
    try:
        info = _INFOS.info(job_model(job.spec.model, home or Home.default(), submitted))
    except (ModelError, ModelRefused, OSError):
        return None
    tokens = len(encode_prompt(job, info.tokenizer))
    return prompt_problem(tokens, job.spec.max_tokens, info.config, world_size)
