"""`mesh inference --local` and `mesh chat --local`: the engine in the CLI's process, no
pool, no agent (provided to meshctl through meshctl/ports.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from meshctl.context import CliError
from meshctl.render import console
from reconciler.inference import Engine, load_model_info, load_shard
from reconciler.inference.errors import ModelError
from reconciler.inference.sampling import SamplingParams
from reconciler.inference.sharding import full_share
from reconciler.inference.tokenizer import Tokenizer
from reconciler.jobs.limits import cache_len, prompt_problem
from reconciler.models import resolve_model


def _process_age() -> float:
    """Seconds since this process started: on Linux from its start tick and the boot
    clock (psutil's create_time rounds the boot time to whole seconds)."""
    try:
        fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
        ticks = int(fields[19])  # field 22 (starttime), counted after the command name
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time() - psutil.Process().create_time()


def _prompt_ids(tokenizer: Tokenizer, args: dict[str, Any]) -> list[int]:
    if args["chat"]:
        text = tokenizer.apply_chat_template([{"role": "user", "content": args["prompt"]}])
        return tokenizer.encode(text, add_special=False)
    return tokenizer.encode(args["prompt"])


def run_local(args: dict[str, Any], quiet: bool) -> dict[str, Any]:
    """Load the whole model here and generate; the same document as a pool job."""
    started = time.perf_counter()
    try:
        path = resolve_model(args["model"])
        info = load_model_info(path)
        prompt_ids = _prompt_ids(info.tokenizer, args)
        problem = prompt_problem(len(prompt_ids), args["max_tokens"], info.config)
        if problem is not None:  # refused before any weight is read
            raise CliError(problem)
        with Progress(TextColumn("loading {task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=console, transient=True, disable=quiet) as bar:  # fmt: skip
            task = bar.add_task(path.name, total=1.0)
            weights = load_shard(path, info.config, full_share(info.config),
                                 lambda fraction: bar.update(task, completed=fraction),
                                 args.get("kernels"), args.get("activations"),
                                 args.get("threads"))  # fmt: skip
    except (ModelError, ValueError) as err:
        raise CliError(str(err)) from err
    tokenizer = info.tokenizer
    params = SamplingParams(max_tokens=args["max_tokens"], temperature=args["temperature"],
                            seed=args["seed"] or 0, draft_tokens=args.get("draft_tokens", 0))  # fmt: skip
    size = cache_len(len(prompt_ids), args["max_tokens"], info.config)
    engine = Engine(info.config, weights, cache_len=size)
    ids, text, first, compute, first_age, rounds = [], "", None, 0.0, 0.0, 0
    for event in engine.generate(prompt_ids, params, tokenizer):
        if first is None:
            first, first_age = time.perf_counter(), _process_age()
        ids.append(event.token_id)
        rounds = event.round  # forward passes after the prompt's
        text += event.text
        compute += event.compute_ms
        if not quiet:
            console.print(event.text, end="", markup=False, highlight=False, soft_wrap=True)
    end = time.perf_counter()
    decode_s = end - (first or end)
    spec = {"decodeRounds": rounds, "tokensPerRound": (len(ids) - 1) / rounds} if rounds else {}
    return {
        "text": text,
        "tokenIds": ids,
        "promptTokenIds": prompt_ids,
        "promptTokens": len(prompt_ids),
        "completionTokens": len(ids),
        "tokensPerSecond": (len(ids) - 1) / decode_s if len(ids) > 1 and decode_s > 0 else None,
        "timeToFirstTokenMs": ((first or end) - started) * 1000,
        "startToFirstTokenMs": first_age * 1000,
        "members": [
            {
                "nodeId": "local",
                "columns": [0, 8192],
                "computeMs": compute,
                "commMs": 0.0,
                "bytesSent": 0,
            }
        ],
        **(spec if params.speculative else {}),  # as a pool job: only when drafts ran
    }


@dataclass
class LocalChat:
    """Answers a chat with the whole model loaded in this process."""

    engine: Engine
    tokenizer: Tokenizer
    params: SamplingParams

    def answer(self, messages: list[dict[str, str]]) -> Generator[str, None, None]:
        prompt = self.tokenizer.apply_chat_template(messages)
        ids = self.tokenizer.encode(prompt, add_special=False)
        for event in self.engine.generate(ids, self.params, self.tokenizer):
            yield event.text

    def stop(self) -> None:
        return None


def local_chat(model: str, sampling: dict[str, Any]) -> LocalChat:
    """The model loaded here, with the chat's sampling parameters."""
    try:
        path = resolve_model(model)
        info = load_model_info(path)
        weights = load_shard(path, info.config, full_share(info.config), lambda _: None)
    except ModelError as err:
        raise CliError(str(err)) from err
    params = SamplingParams(max_tokens=sampling["maxTokens"], temperature=sampling["temperature"],
                            seed=sampling.get("seed", 0))  # fmt: skip
    return LocalChat(Engine(info.config, weights), info.tokenizer, params)
