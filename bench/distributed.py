"""Distributed decoding over links with real latency: each plan against one member alone.

    .venv/bin/python bench/distributed.py                       # 0.2, 1, 5, 20 ms, all plans
    .venv/bin/python bench/distributed.py --delays 5 --plans auto,tensor --rounds 1 --max-tokens 16
    .venv/bin/python bench/distributed.py -o json

Two agents in network namespaces of their own (needs root), on two bridges joined by the
layer-2 delay line of tests/e2e (one-way delay = half the round trip), each limited to
ONE kernel thread (MESHNET_THREADS=1, OPENBLAS_NUM_THREADS=1), run the demo model. In the
same run, round by round, ``mesh inference --local --threads 1`` gives the single-member
baseline. For each round trip and plan (Job.spec.parallelism), a greedy job of
``--max-tokens`` tokens: decode tok/s (median over ``--rounds``), ratio to the baseline,
bytes per token (a full job minus a 2-token job), forward passes per token and the plan
the agent chose; and a prompt-lookup job (spec.draftTokens) on a prompt that
repeats text. A plan the agent or the manifest schema refuses is reported as such.
Then the issue's targets, PASS/FAIL, and the "model" section: per-exchange overhead with
no injected delay, compute ms/token at one thread, bytes/token, and the tokens/s each
plan would reach on Gigabit Ethernet and Wi-Fi for 2 and 4 devices (bench/distributed_model.py).
Figures only; the machine's load moves them.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e"), str(ROOT / "bench")]

from agents import WATCHED  # noqa: E402
from delayline import DelayLine, open_delay_line  # noqa: E402
from distributed_model import (  # noqa: E402
    GIGABIT,
    WIFI,
    Costs,
    overhead_per_exchange,
    predict,
    rtts_per_exchange,
)
from lan import Device, Lan, netns_available  # noqa: E402
from pool_steps import two_device_pool  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from manifests import Job  # noqa: E402
from manifests.job import JobSpec  # noqa: E402
from reconciler.store import Store  # noqa: E402

PROMPT = (
    "Write a long story about a lighthouse keeper who finds a map in a bottle. "
    "Describe the island, the storm and the journey in detail."
)
REPEAT = (
    "def add(a, b):\n    return a + b\n\n" * 3
    + "The list of colours is: red, green, blue, red, green, blue, red, green, blue, "
)
THREAD_ENV = {"MESHNET_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
PLANS = ("auto", "tensor", "pipeline", "single")


def submit(device: Device, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Apply a Job on ``device``'s store, wait for it to end; its status (camelCase) or
    ``{"refused": reason}`` when the schema or the agent refuses it."""
    name = f"bench-{secrets.token_hex(3)}"
    try:
        job = Job.model_validate(
            {"metadata": {"name": name}, "spec": {"pool": "test-pool", **spec}}
        )
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return {"refused": f"the Job schema: {where}: {first['msg']}"}
    with Store.open(device.home.root) as store:
        store.apply(job)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = store.require("Job", name)
            status = found.status.model_dump(mode="json", by_alias=True, exclude_none=True)
            if status.get("phase") == "Failed":
                return _log(spec, {"refused": f"{status.get('failureReason')}: "
                                              f"{status.get('failureMessage')}"})  # fmt: skip
            if status.get("phase") == "Succeeded":
                return _log(spec, status)
            time.sleep(0.05)
    return _log(spec, {"refused": f"timed out after {timeout:.0f} s"})


def _log(spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """One line of progress on stderr per job (a full run takes a while)."""
    what = f"{spec.get('parallelism', 'auto')} {spec['maxTokens']} tokens"
    if spec.get("draftTokens"):
        what += f" draft {spec['draftTokens']}"
    outcome = status.get("refused") or f"{status.get('tokensPerSecond') or 0:.1f} tok/s"
    print(f"  job {what}: {outcome}", file=sys.stderr, flush=True)
    return status


def local(device: Device, prompt: str, tokens: int, activations: str) -> dict[str, Any]:
    args = ["inference", "--local", "-o", "json", "--model", "demo", "--prompt", prompt,
            "--max-tokens", str(tokens), "--threads", "1", "--activations", activations]  # fmt: skip
    return dict(json.loads(device.cli(*args, tool="mesh", timeout=600).stdout))


WIRE = "auto"  # Job.spec.wire (--wire)


def job_spec(plan: str, prompt: str, tokens: int, draft: int = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": "demo", "prompt": prompt, "maxTokens": tokens}
    if WIRE != "auto":
        spec["wire"] = WIRE
    if plan != "auto" and (plan != "tensor" or "parallelism" in JobSpec.model_fields):
        spec["parallelism"] = plan  # (before plans, every job ran the tensor plan)
    if draft:
        spec["draftTokens"] = draft
    return spec


def plan_of(status: dict[str, Any]) -> str:
    """The plan the agent chose: its status field, else today's tensor plan by ring size."""
    for key in ("plan", "parallelism"):
        value = status.get(key)
        if isinstance(value, dict):
            value = value.get("kind")
        if isinstance(value, str):
            return value
    return "tensor" if len(status.get("members", [])) > 1 else "single"


def passes_per_token(status: dict[str, Any], draft: int) -> float | None:
    """Decode forward passes per decoded token (the prefill's pass and token aside): from
    the status's ``decodeRounds``, else one per token when nothing is drafted."""
    tokens, rounds = status.get("completionTokens") or 0, status.get("decodeRounds")
    if isinstance(rounds, int) and rounds > 0 and tokens > 1:
        return rounds / (tokens - 1)
    return 1.0 if not draft else None


def member_bytes(status: dict[str, Any]) -> dict[str, int]:
    return {str(m.get("nodeId")): int(m.get("bytesSent", 0)) for m in status.get("members", [])}


def bytes_per_token(short: dict[str, Any], full: dict[str, Any]) -> float | None:
    """What the busiest member sends per decoded token: a full job minus a 2-token job
    (the prompt's bytes cancel out). Issue 10's 143,520 is this figure at TP = 2."""
    if "refused" in short or "refused" in full:
        return None
    n = (full.get("completionTokens") or 0) - (short.get("completionTokens") or 0)
    before, after = member_bytes(short), member_bytes(full)
    if n <= 0 or not after:
        return None
    return max(after[node] - before.get(node, 0) for node in after) / n


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class Sweep:
    """Every job of one bench run, then the figures."""

    def __init__(self, args: argparse.Namespace, coordinator: Device, line: DelayLine) -> None:
        self.args, self.device, self.line = args, coordinator, line
        self.rows: list[dict[str, Any]] = []
        self.baseline: list[float] = []
        self.local_tokens: dict[str, list[int]] = {}
        self.bytes_per_token: dict[str, float | None] = {}
        self.no_lookup_tps: dict[str, float | None] = {}  # "plan/rtt": the repeating prompt
        self.timeout = 120.0 + args.max_tokens * 3.0

    def run(self) -> None:
        # Bytes per token need no delay: a full job minus a 2-token job, per plan.
        self.line.set_delay(0.0)
        print("warm-up, then bytes per token", file=sys.stderr, flush=True)
        submit(self.device, job_spec("auto", PROMPT, 2), self.timeout)
        for plan in self.args.plans:
            short = submit(self.device, job_spec(plan, PROMPT, 2), self.timeout)
            full = submit(self.device, job_spec(plan, PROMPT, self.args.max_tokens), self.timeout)
            self.bytes_per_token[plan] = bytes_per_token(short, full)
        print("no injected delay", file=sys.stderr, flush=True)
        self.rows.append(self.measure(0.0, ["tensor"], speculative=False))
        for rtt in self.args.delays:
            print(f"round trip {rtt:g} ms", file=sys.stderr, flush=True)
            self.line.set_delay(rtt / 2.0)
            self.rows.append(self.measure(rtt, self.args.plans, speculative=True))

    def measure(self, rtt: float, plans: list[str], speculative: bool) -> dict[str, Any]:
        runs: dict[str, list[dict[str, Any]]] = {p: [] for p in plans}
        spec_plans = [p for p in ("auto", "tensor") if p in plans] if speculative else []
        spec_runs: dict[str, list[dict[str, Any]]] = {p: [] for p in spec_plans}
        for _ in range(self.args.rounds):
            alone = local(self.device, PROMPT, self.args.max_tokens, self.args.activations)
            self.baseline.append(alone.get("tokensPerSecond") or 0.0)
            self.local_tokens.setdefault("plain", alone["tokenIds"])
            turn = len(self.baseline)  # each round starts with another plan (load drifts)
            for plan in plans[turn % len(plans) :] + plans[: turn % len(plans)]:
                runs[plan].append(
                    submit(self.device, job_spec(plan, PROMPT, self.args.max_tokens), self.timeout)
                )
            for plan in spec_plans if self.args.draft_tokens else []:
                if f"repeat/{plan}/{rtt}" not in self.local_tokens:  # the same plan, no lookup
                    plain = job_spec(plan, REPEAT, self.args.max_tokens)
                    reference = submit(self.device, plain, self.timeout)
                    self.local_tokens[f"repeat/{plan}/{rtt}"] = reference.get("tokenIds") or []
                    self.no_lookup_tps[f"{plan}/{rtt}"] = reference.get("tokensPerSecond")
                spec = job_spec(plan, REPEAT, self.args.max_tokens, self.args.draft_tokens)
                spec_runs[plan].append(submit(self.device, spec, self.timeout))
        row: dict[str, Any] = {"rttMs": rtt, "plans": {}}
        for plan, statuses in runs.items():
            row["plans"][plan] = self.summarise(plan, statuses, "plain", 0)
        row["speculative"] = {
            plan: self.summarise(plan, statuses, f"repeat/{plan}/{rtt}", self.args.draft_tokens)
            for plan, statuses in spec_runs.items()
            if statuses
        }
        for plan, entry in row["speculative"].items():
            without = self.no_lookup_tps.get(f"{plan}/{rtt}")
            if entry.get("tokensPerSecond") and without:
                entry["speedUp"] = entry["tokensPerSecond"] / without
        return row

    def summarise(
        self, plan: str, statuses: list[dict[str, Any]], prompt: str, draft: int
    ) -> dict[str, Any]:
        done = [s for s in statuses if "refused" not in s]
        if not done:
            return {"refused": statuses[0]["refused"] if statuses else "not run"}
        tps = median([s.get("tokensPerSecond") or 0.0 for s in done])
        passes = [p for s in done if (p := passes_per_token(s, draft)) is not None]
        reference = self.local_tokens.get(prompt) or []
        same = all(s.get("tokenIds") == reference for s in done)
        return {
            "tokensPerSecond": tps,
            "ratio": (tps or 0.0) / (median(self.baseline) or 1.0),
            "chosen": _chosen(plan, done[0]),
            "bytesPerToken": self.bytes_per_token.get(plan) if not draft else None,
            "passesPerToken": median(passes),
            "sameTokensAsLocal": same,
            "agreement": median([_agreement(s.get("tokenIds") or [], reference) for s in done]),
            "computeMsPerToken": median([_compute_per_token(s) for s in done]),
        }


def _agreement(tokens: list[int], reference: list[int]) -> float:
    """The share of ``reference`` a run repeats before its first different token (greedy
    runs part for good at the first difference)."""
    same = 0
    for ours, theirs in zip(tokens, reference, strict=False):
        if ours != theirs:
            break
        same += 1
    return same / max(1, len(reference))


def _chosen(asked: str, status: dict[str, Any]) -> str:
    """The plan that ran, marked ``!`` when it is not the one asked for."""
    ran = plan_of(status)
    return f"{ran}!" if asked != "auto" and ran != asked else ran


def _compute_per_token(status: dict[str, Any]) -> float:
    members = status.get("members", [])
    tokens = max(1, (status.get("promptTokens") or 0) + (status.get("completionTokens") or 0))
    return max((m.get("computeMs", 0.0) for m in members), default=0.0) / tokens


def row_at(rows: list[dict[str, Any]], rtt: float) -> dict[str, Any] | None:
    return next((r for r in rows if abs(r["rttMs"] - rtt) < 1e-9), None)


def tps_of(row: dict[str, Any] | None, plan: str) -> float | None:
    entry = (row or {}).get("plans", {}).get(plan) or {}
    value = entry.get("tokensPerSecond")
    return float(value) if value else None


def targets(sweep: Sweep) -> list[tuple[str, str, str]]:
    """(target, measured, PASS/FAIL/n/a) for each of issue 10's targets."""
    rows = sweep.rows[1:]
    base = median(sweep.baseline) or 0.0
    checks: list[tuple[str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else "PASS" if ok else "FAIL"

    for rtt, floor in ((5.0, 0.5), (0.2, 0.8)):
        auto = tps_of(row_at(rows, rtt), "auto")
        measured = f"{auto / base:.2f} x" if auto and base else "not measured"
        checks.append((f"auto at {rtt:g} ms >= {floor:.0%} of one member",
                       measured, verdict(auto / base >= floor if auto and base else None)))  # fmt: skip
    for row in rows:
        auto = tps_of(row, "auto")
        best = max((t for p in row["plans"] if (t := tps_of(row, p))), default=None)
        ok = auto >= 0.9 * best if auto and best and len(row["plans"]) > 1 else None
        checks.append((f"auto within 10% of the best plan at {row['rttMs']:g} ms",
                       f"{auto or 0:.1f} vs best {best or 0:.1f} tok/s", verdict(ok)))  # fmt: skip
    tp_bytes = sweep.bytes_per_token.get("tensor")
    checks.append(("bytes/token at TP=2 <= 143,520 / 3 = 47,840",
                   f"{tp_bytes:,.0f}" if tp_bytes else "not measured",
                   verdict(tp_bytes <= 47840 if tp_bytes else None)))  # fmt: skip
    specs = [e for r in rows for e in r["speculative"].values() if e.get("chosen") != "single"]
    specs = [e for e in specs if "passesPerToken" in e]  # distributed rounds only
    passes = [s["passesPerToken"] for s in specs if s["passesPerToken"] is not None]
    same = all(s["sameTokensAsLocal"] for s in specs)
    checks.append(("prompt lookup <= 0.6 passes/token, same tokens",
                   f"{max(passes):.2f}, same={same}" if passes else "not measured",
                   verdict(max(passes) <= 0.6 and same if passes else None)))  # fmt: skip
    exact = sweep.args.activations == "exact"
    every = [
        e["sameTokensAsLocal"] for r in rows for e in r["plans"].values() if "refused" not in e
    ]
    checks.append(("every plan gives --local's greedy tokens (exact mode)",
                   f"{sum(every)}/{len(every)} runs" if every else "not measured",
                   verdict(all(every) if every and exact else None)))  # fmt: skip
    return checks


def costs_of(sweep: Sweep) -> Costs | None:
    """The measured per-round costs, or None when the tensor plan did not run."""
    from reconciler.inference import demo_model_path, load_model_info

    config = load_model_info(demo_model_path()).config
    exchanges = 2 * config.n_layers + 2  # 2 all-reduces per layer, embeddings and LM head
    base = median(sweep.baseline)
    points = [(r["rttMs"], 1000.0 / t) for r in sweep.rows if (t := tps_of(r, "tensor"))]
    if not base or not points or points[0][0] != 0.0:
        return None
    compute = 1000.0 / base
    # One activation vector per stage boundary: as measured when the pipeline plan ran
    # (one member sends one hop per token at two stages), else computed from the wire.
    hop = sweep.bytes_per_token.get("pipeline") or (
        config.dim * 4.0 if sweep.args.activations == "exact" else config.dim / 32 * 34
    )
    return Costs(
        compute_ms=compute,
        exchanges=exchanges,
        overhead_ms=overhead_per_exchange(points[0][1], compute, exchanges),
        rtts_per_exchange=rtts_per_exchange(points, exchanges),
        tp_bytes_per_token=sweep.bytes_per_token.get("tensor") or 0.0,
        hop_bytes=hop,
    )


def predictions(costs: Costs) -> list[dict[str, Any]]:
    out = []
    for link in (GIGABIT, WIFI):
        for devices in (2, 4):
            for plan in ("single", "tensor", "pipeline"):
                tps, arithmetic = predict(costs, link, plan, devices)
                out.append({"link": link.name, "devices": devices, "plan": plan,
                            "tokensPerSecond": tps, "msPerToken": arithmetic})  # fmt: skip
    return out


def report(sweep: Sweep) -> dict[str, Any]:
    costs = costs_of(sweep)
    return {
        "baselineTokensPerSecond": median(sweep.baseline),
        "rows": sweep.rows,
        "bytesPerToken": sweep.bytes_per_token,
        "targets": [{"target": t, "measured": m, "result": r} for t, m, r in targets(sweep)],
        "model": None if costs is None else {**costs.__dict__, "predictions": predictions(costs)},
        "lookupPassesPerToken": median(
            [
                p
                for r in sweep.rows
                for e in r.get("speculative", {}).values()
                if e.get("chosen") != "single" and (p := e.get("passesPerToken"))
            ]
        ),
    }


def _fmt(value: Any, spec: str) -> str:
    width = int("".join(c for c in spec.split(".")[0] if c.isdigit()) or 0)
    return "-".rjust(width) if value is None else format(value, spec)


def print_report(doc: dict[str, Any], args: argparse.Namespace) -> None:
    base = doc["baselineTokensPerSecond"] or 0.0
    print(f"\none member alone, one thread (--local): {base:.1f} tok/s median "
          f"({args.max_tokens} tokens, activations {args.activations}, wire {args.wire})")  # fmt: skip
    print("\nchosen: the plan the agent ran ('!': not the one asked for); B/tok/memb: bytes the"
          " busiest member sends per decoded token; passes/tok: decode forward passes per"
          " token; agree: share of --local's greedy tokens (lookup rows: of the same plan's"
          " without lookup) repeated before the first difference")  # fmt: skip
    print(f"\n{'RTT ms':>7} {'plan':<14} {'chosen':<9} {'tok/s':>7} {'ratio':>6} {'B/tok/memb':>10}"
          f" {'passes/tok':>10} {'agree':>6}")  # fmt: skip
    for row in doc["rows"]:
        entries = [*row["plans"].items()]
        for plan, e in row.get("speculative", {}).items():
            entries.append((f"{plan}+lookup{args.draft_tokens}", e))
        for plan, e in entries:
            if "refused" in e:
                print(f"{row['rttMs']:>7g} {plan:<14} refused: {e['refused']}")
                continue
            print(f"{row['rttMs']:>7g} {plan:<14} {e['chosen']:<9} {_fmt(e['tokensPerSecond'], '7.1f')}"
                  f" {_fmt(e['ratio'], '6.2f')} {_fmt(e['bytesPerToken'], '10,.0f')}"
                  f" {_fmt(e['passesPerToken'], '10.2f')} {_fmt(e['agreement'], '6.2f')}")  # fmt: skip
    print("\ntargets (issue 10):")
    for t in doc["targets"]:
        print(f"  {t['result']:<4}  {t['target']}: {t['measured']}")
    model = doc["model"]
    if model is None:
        print("\nmodel: not measured (the tensor plan must run with no injected delay)")
        return
    print("\nmodel (bench/distributed_model.py):")
    print(f"  c  compute per token, one member, one thread   {model['compute_ms']:.2f} ms")
    print(f"  X  tensor-plan exchanges per token              {model['exchanges']}")
    print(f"  o  overhead per exchange, 0 ms injected delay   {model['overhead_ms'] * 1000:.0f} us"
          "  (TLS, veth, bridge and the delay line's user-space hop)")  # fmt: skip
    print(f"  k  round trips waited per exchange (slope)      {model['rtts_per_exchange']:.2f}")
    print(f"     bytes per token sent by one member at TP=2   {model['tp_bytes_per_token']:,.0f}")
    print(f"     pipeline bytes per stage boundary per token  {model['hop_bytes']:,.0f} bytes")
    for p in model["predictions"]:
        print(
            f"  {p['link']:<16} {p['devices']} devices {p['plan']:<9}"
            f" {p['tokensPerSecond']:7.1f} tok/s   t = {p['msPerToken']}"
        )
    lookup = doc["lookupPassesPerToken"]
    if lookup:
        ups = [f"{plan} at {row['rttMs']:g} ms {e['speedUp']:.1f}x ({e['chosen']})"
               for row in doc["rows"] for plan, e in row.get("speculative", {}).items()
               if e.get("speedUp")]  # fmt: skip
        print(f"  prompt lookup, repeating prompt: {lookup:.2f} distributed passes per token;"
              f" measured speed-up over the same plan without it: {', '.join(ups)}")  # fmt: skip


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="repetitions (medians)")
    parser.add_argument("--delays", default="0.2,1,5,20", help="round trips to inject, ms")
    parser.add_argument("--plans", default=",".join(PLANS), help="Job.spec.parallelism values")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per job")
    parser.add_argument("--draft-tokens", type=int, default=4, help="prompt lookup (0: skip)")
    parser.add_argument("--activations", default="int8", choices=("int8", "exact"))
    parser.add_argument("--wire", default="auto", choices=("auto", "f32", "q80"),
                        help="Job.spec.wire: partial results on the wire")  # fmt: skip
    parser.add_argument("-o", "--output", default="text", choices=("text", "json"))
    args = parser.parse_args()
    args.delays = [float(d) for d in args.delays.split(",") if d]
    args.plans = [p for p in args.plans.split(",") if p]
    if "auto" not in args.plans:
        args.plans.insert(0, "auto")
    return args


def main() -> None:
    global WIRE
    args = parse()
    WIRE = args.wire
    if not netns_available():
        sys.exit("bench/distributed.py needs root and network namespaces (ip netns)")
    from reconciler.inference import demo_model_path

    env = {**THREAD_ENV, "MESHNET_ACTIVATIONS": args.activations}
    root = Path(tempfile.mkdtemp(prefix="meshnet-distributed-"))
    lan = Lan(root, use_netns=True)
    WATCHED[:] = [root]  # wait_for wakes on what the agents write there
    line: DelayLine | None = None
    try:
        assert lan.hub is not None
        line = open_delay_line(lan.hub, "br0", "br1", 0.0, lifetime=7200.0)
        coordinator, _ = two_device_pool(lan, demo_model_path(), ("br0", "br1"), env)
        for device in lan.devices:
            device.extra_env = {**device.extra_env, **env}
        sweep = Sweep(args, coordinator, line)
        sweep.run()
        doc = report(sweep)
    finally:
        if line is not None:
            line.stop()
        lan.close()
        shutil.rmtree(root, ignore_errors=True)
    if args.output == "json":
        print(json.dumps(doc, indent=2))
    else:
        print_report(doc, args)


if __name__ == "__main__":
    os.environ.update(THREAD_ENV)
    # A SIGTERM (timeout, CI) unwinds too, so the namespaces and agents are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
