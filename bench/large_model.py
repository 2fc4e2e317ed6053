"""Memory and load time of one pool member holding its share of a ~1.5B-parameter model.

No download: the model is a synthetic llama-shaped GGUF with random weights, written by
``gguf.GGUFWriter`` one tensor at a time (the writer never holds the model), with valid
random Q4_0 or Q4_K blocks made directly in their byte layout (gguf's Python quantizer
has no Q4_K, and quantizing 1.5B floats would be slow). Then, each in a fresh process,
one member loads its share through the public loader (``load_config``, ``plan_shares``,
``load_shard``) at TP=1 and at TP=2 (rank 0 and rank 1 separately, as on two devices)
and reports its load time and peak RSS beside the issue's target::

    file size / N + 15% + KV cache

    .venv/bin/python bench/large_model.py                      # Q4_0, temp file, removed after
    .venv/bin/python bench/large_model.py --path /tmp/s.gguf    # write once, reuse, keep
    .venv/bin/python bench/large_model.py --qtype Q4_K --tokens 4

``--tokens N`` also prefills a few tokens and decodes N on each member's share alone
(SingleRank: the member's own compute, no network). TP=1 is skipped, with a message,
when its estimated peak exceeds the memory available now. Figures only: no assertions.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARD_COLUMNS = 8192
# TinyLlama-like, wider MLP: 22 x 62.9M + 2 x 65.5M (embedding, LM head) = 1.51B parameters.
SHAPE = {
    "vocab": 32000,
    "dim": 2048,
    "hidden": 8192,
    "layers": 22,
    "heads": 16,
    "kv_heads": 8,
    "context": 4096,
}
# Block layout (bytes) and where its fp16 scales sit: Q4_0 = d, 16 bytes of nibbles;
# Q4_K = d, dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles.
QTYPES = {"Q4_0": (32, 18, (0,)), "Q4_K": (256, 144, (0, 2))}
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
GiB = float(1 << 30)
LAYOUTS = ["exact", "int8", "ggml"]  # what a member can hold (auto picks one of them)


# -- writing the synthetic model ------------------------------------------------------


def tensor_plan(qtype: str) -> list[tuple[str, tuple[int, int] | tuple[int], str]]:
    """(name, numpy shape [out, in] or [n], type) of every tensor, in file order."""
    s = SHAPE
    e = s["dim"] // s["heads"]
    plan: list[tuple[str, tuple[int, int] | tuple[int], str]] = [
        ("token_embd.weight", (s["vocab"], s["dim"]), qtype),
        ("output.weight", (s["vocab"], s["dim"]), qtype),
        ("output_norm.weight", (s["dim"],), "F32"),
    ]
    mats = {
        "attn_q": (s["heads"] * e, s["dim"]),
        "attn_k": (s["kv_heads"] * e, s["dim"]),
        "attn_v": (s["kv_heads"] * e, s["dim"]),
        "attn_output": (s["dim"], s["heads"] * e),
        "ffn_gate": (s["hidden"], s["dim"]),
        "ffn_up": (s["hidden"], s["dim"]),
        "ffn_down": (s["dim"], s["hidden"]),
    }
    for i in range(s["layers"]):
        plan.append((f"blk.{i}.attn_norm.weight", (s["dim"],), "F32"))
        plan.append((f"blk.{i}.ffn_norm.weight", (s["dim"],), "F32"))
        plan += [(f"blk.{i}.{n}.weight", shape, qtype) for n, shape in mats.items()]
    return plan


def random_blocks(rng: np.random.Generator, shape: tuple[int, int], qtype: str) -> np.ndarray:
    """[out, bytes per row] of random blocks whose fp16 scales are small and finite."""
    block, size, scale_offsets = QTYPES[qtype]
    rows, cols = shape
    n = rows * cols // block
    data = np.frombuffer(rng.bytes(n * size), dtype=np.uint8).reshape(n, size).copy()
    for off in scale_offsets:
        scale = rng.uniform(2e-4, 1e-3 if qtype == "Q4_K" else 1.5e-2, n).astype("<f2")
        data[:, off : off + 2] = scale.view(np.uint8).reshape(n, 2)
    return data.reshape(rows, cols // block * size)


def write_model(path: Path, qtype: str, seed: int = 0) -> None:
    """Stream the synthetic GGUF to ``path`` (written to a side file, then renamed)."""
    import gguf

    s = SHAPE
    tmp = path.with_suffix(".partial")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name(f"synthetic-llama-1.5b-{qtype.lower()}")
    writer.add_context_length(s["context"])
    writer.add_embedding_length(s["dim"])
    writer.add_block_count(s["layers"])
    writer.add_feed_forward_length(s["hidden"])
    writer.add_head_count(s["heads"])
    writer.add_head_count_kv(s["kv_heads"])
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(s["vocab"])
    plan = tensor_plan(qtype)
    for name, shape, t in plan:
        raw = gguf.GGMLQuantizationType[t]
        if t == "F32":
            writer.add_tensor_info(name, shape, np.dtype(np.float32), shape[0] * 4, raw)
        else:
            assert len(shape) == 2, name  # quantized tensors are matrices
            block, size, _ = QTYPES[t]
            byte_shape = (shape[0], shape[1] // block * size)
            nbytes = byte_shape[0] * byte_shape[1]
            writer.add_tensor_info(name, byte_shape, np.dtype(np.uint8), nbytes, raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    for name, shape, t in plan:
        if t == "F32":
            writer.write_tensor_data(np.ones(shape, dtype=np.float32))
        else:
            assert len(shape) == 2, name
            writer.write_tensor_data(random_blocks(rng, shape, t))
    writer.close()
    tmp.rename(path)


def n_params() -> int:
    return sum(int(np.prod(shape)) for _, shape, _ in tensor_plan("Q4_0"))


def held_params(world: int) -> float:
    """Weights of the matrices one of ``world`` members holds in the kernel's layout (the
    untied embedding stays the file's mapped pages)."""
    plan = tensor_plan("Q4_0")
    return (
        sum(int(np.prod(s)) for n, s, _ in plan if len(s) == 2 and n != "token_embd.weight") / world
    )


def estimates(path: Path, modes: list[str]) -> dict[str, int]:
    """Bytes of the whole model's weights in each layout, from the file's tensor records
    alone (what a member checks before it loads: ``jobs.plans.held_sizes``)."""
    sys.path.insert(0, str(ROOT))
    from reconciler.jobs.plans import held_sizes, tensor_records

    records = tensor_records(path)
    return {m: sum(held_sizes(records, m).values()) for m in modes}


# -- one member, in a fresh process ----------------------------------------------------


def smaps_rollup() -> dict[str, int]:
    """Anonymous and file-backed resident bytes of this process (Linux; else empty)."""
    try:
        lines = Path("/proc/self/smaps_rollup").read_text().splitlines()
    except OSError:
        return {}
    fields = {p[0].rstrip(":"): int(p[1]) * 1024 for p in map(str.split, lines) if len(p) == 3}
    if "Rss" not in fields or "Anonymous" not in fields:
        return {}
    return {"anon": fields["Anonymous"], "file": fields["Rss"] - fields["Anonymous"]}


def member_main(args: argparse.Namespace) -> None:
    """Load one rank's share, print one JSON line of figures."""
    sys.path.insert(0, str(ROOT))
    import psutil

    from reconciler.inference import Engine, SingleRank, load_config, load_shard, plan_shares

    proc = psutil.Process()
    base_rss, base = proc.memory_info().rss, smaps_rollup()
    path, world, rank = Path(args.path), args.world, args.rank
    config = load_config(path)
    cuts = [SHARD_COLUMNS * r // world for r in range(world + 1)]
    share = plan_shares(config, list(itertools.pairwise(cuts)), SHARD_COLUMNS)[rank]
    start, cpu_start = time.perf_counter(), time.process_time()
    positions = min(args.cache_len, config.max_seq)
    kv_fp32 = 2 * config.n_layers * share.n_kv_heads * positions * config.head_dim * 4
    layout, note = args.activations, None
    if layout == "auto":  # as a member offering the target's memory would
        layout, note = auto_layout(path, world, kv_fp32)
    ggml = layout == "ggml"  # the file's own blocks, 8-bit activations
    weights = load_shard(path, config, share, kernels="ggml" if ggml else None,
                         activations="int8" if ggml else layout)  # fmt: skip
    load_s, load_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    loaded_rss, loaded = proc.memory_info().rss, smaps_rollup()
    engine = Engine(config, weights, SingleRank(), cache_len=args.cache_len)
    caches = [getattr(engine, name, None) for name in ("cache_k", "cache_v")]
    kv = sum(c.nbytes for c in caches if c is not None) or kv_fp32
    decode: float | str | None = None
    if args.tokens:
        try:
            decode = decode_smoke(engine, share.vocab_end - share.vocab_start, args.tokens)
        except Exception as exc:  # the load figures stand; say why the smoke failed
            decode = f"{type(exc).__name__}: {exc}"[:60]
    nbytes = getattr(weights, "nbytes", None)
    figures = {
        "world": world,
        "rank": rank,
        "activations": args.activations,
        "layout": layout,
        "note": note,
        "load_s": load_s,
        "load_cpu_s": load_cpu,
        "base_rss": base_rss,
        "load_peak_rss": load_peak,
        "loaded_rss": loaded_rss,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "weights_bytes": nbytes() if callable(nbytes) else None,
        "kv_bytes": kv,
        "decode_tok_s": decode,
    }
    if base and loaded:  # what loading added: the share in the kernel's layout, mostly
        figures |= {"anon": loaded["anon"], "file": loaded["file"],
                    "load_anon": loaded["anon"] - base["anon"]}  # fmt: skip
    print(json.dumps(figures))


def auto_layout(path: Path, world: int, kv: int) -> tuple[str, str | None]:
    """The layout ``plans.choose_layout`` gives a member whose Member offers the target's
    bytes (``spec.capacity.memoryBytes`` = file / N + 15% + KV) on this device, int8
    being the default and nobody having chosen: the agent's own rule (``jobs.member``),
    costed from the file's tensor records."""
    import psutil

    from reconciler.jobs.plans import choose_layout, held_sizes, tensor_records

    records = tensor_records(path)
    needs = {m: sum(held_sizes(records, m).values()) // world + kv for m in LAYOUTS}
    free = int(psutil.virtual_memory().available)
    room = min(free, int(target_bytes(path.stat().st_size, world, kv)))
    stored = path.stat().st_size // world + kv
    choice = choose_layout(needs, room, "int8", False, stored, offered=room < free)
    return choice.layout, choice.note or choice.problem


def decode_smoke(engine: Any, vocab_held: int, tokens: int) -> float:
    """Tokens/s of a member's share alone (SingleRank embeds its own vocabulary rows only)."""
    logits = engine.prefill([i % vocab_held for i in range(1, 9)])
    start = time.perf_counter()
    for _ in range(tokens):
        logits = engine.decode(int(np.argmax(logits)) % vocab_held)
    return tokens / (time.perf_counter() - start)


def run_member(
    args: argparse.Namespace, path: Path, world: int, rank: int, mode: str
) -> dict[str, Any]:
    """Run ``member_main`` in a fresh interpreter; its figures, or an ``error``."""
    from reconciler.hugepages import huge_pages_env

    env = huge_pages_env({**os.environ, **{v: str(args.threads) for v in THREAD_VARS}})
    env["PYTHONPATH"] = str(ROOT)  # with huge pages where an agent has them (hugepages.py)
    cmd = [sys.executable, __file__, "--member", "--path", str(path), "--world", str(world),
           "--rank", str(rank), "--cache-len", str(args.cache_len), "--tokens", str(args.tokens),
           "--activations", mode]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"world": world, "rank": rank, "error": f"exit {done.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- the report -------------------------------------------------------------------------

Member = tuple[int, int]  # (world, rank)
MEMBERS: list[Member] = [(1, 0), (2, 0), (2, 1)]


def target_bytes(file_size: int, world: int, kv: int) -> float:
    return file_size / world * 1.15 + kv


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over rounds (the first error or skip, if any)."""
    for r in rows:
        if "error" in r or "skipped" in r:
            return r
    out = dict(rows[0])
    for key, value in rows[0].items():
        numbers = [r[key] for r in rows if isinstance(r.get(key), int | float)]
        if isinstance(value, int | float) and len(numbers) == len(rows):
            out[key] = statistics.median(numbers)
    return out


def verdict(r: dict[str, Any] | None, file_size: int) -> str:
    """``peak GiB  ratio  PASS|FAIL`` of one member and mode, against its target."""
    if r is None:
        return f"{'-':>20}"
    if "error" in r or "skipped" in r:
        return f"{'skipped' if 'skipped' in r else 'error':>20}"
    ratio = r["peak_rss"] / target_bytes(file_size, r["world"], r["kv_bytes"])
    return f"{r['peak_rss'] / GiB:6.2f} {ratio:6.2f}x {'PASS' if ratio <= 1.0 else 'FAIL':>5}"


def print_verdicts(results: dict[tuple[str, Member], dict[str, Any]], modes: list[str],
                   file_size: int) -> None:  # fmt: skip
    print(
        f"{'member':14} {'limit GiB':>9}" + "".join(f" {m + ' peak GiB, ratio':>22}" for m in modes)
    )
    for world, rank in MEMBERS:
        rows = [results.get((m, (world, rank))) for m in modes]
        kv = next((r["kv_bytes"] for r in rows if r and "kv_bytes" in r), None)
        limit = f"{target_bytes(file_size, world, kv) / GiB:9.2f}" if kv else f"{'-':>9}"
        cells = "".join(f" {verdict(r, file_size):>22}" for r in rows)
        print(f"{f'TP={world} rank {rank}':14} {limit}{cells}")


def print_breakdown(results: dict[tuple[str, Member], dict[str, Any]], modes: list[str],
                    file_size: int, estimate: dict[str, int]) -> None:  # fmt: skip
    print(f"\n{'member':14} {'mode':5} {'load s':>6} {'CPU s':>5} {'after':>6} {'anon':>6} "
          f"{'file':>5} {'loaded':>6} {'x file':>6} {'peak-after':>10} {'KV':>4} {'tok/s':>6} "
          f"{'held':>5} {'B/w':>6} {'est.':>5}")  # fmt: skip
    for (world, rank), mode in itertools.product(MEMBERS, modes):
        r = results.get((mode, (world, rank)))
        label = f"TP={world} rank {rank}"
        if r is None or "error" in r or "skipped" in r:
            why = "-" if r is None else r.get("error") or r.get("skipped")
            print(f"{label:14} {mode:5} {why}")
            continue
        mib = 1 << 20
        share = file_size / world
        added = r.get("load_anon")
        smoke = r["decode_tok_s"]
        print(
            f"{label:14} {mode:5} {r['load_s']:6.1f} {r['load_cpu_s']:5.1f} "
            f"{r['loaded_rss'] / mib:6.0f} "
            + (f"{r['anon'] / mib:6.0f} {r['file'] / mib:5.0f} {added / mib:6.0f} "
               f"{added / share:5.2f}x " if added is not None else f"{'-':>6} {'-':>5} {'-':>6} {'-':>6} ")
            + f"{(r['peak_rss'] - r['loaded_rss']) / mib:10.0f} {r['kv_bytes'] / mib:4.0f} "
            f"{smoke if isinstance(smoke, str) else f'{smoke:6.2f}' if smoke else '     -'} "
            + _held(r, world, estimate.get(r.get("layout", mode)))
        )  # fmt: skip


def _held(r: dict[str, Any], world: int, estimate: int | None) -> str:
    """MiB of weights held, bytes per weight held, and the estimate from the file's records."""
    held = r.get("weights_bytes")
    if not held:
        return ""
    est = f"{estimate / world / (1 << 20):5.0f}" if estimate else f"{'-':>5}"
    return f"{held / (1 << 20):5.0f} {held / held_params(world):6.4f} {est}"


def available_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def prepare(args: argparse.Namespace) -> tuple[Path, tempfile.TemporaryDirectory[str] | None]:
    tmp = None
    if args.path:
        path = Path(args.path).expanduser()
    else:
        tmp = tempfile.TemporaryDirectory(prefix="meshnet-large-")
        path = Path(tmp.name) / f"synthetic-llama-1.5b-{args.qtype.lower()}.gguf"
    if not path.exists():
        start = time.perf_counter()
        write_model(path, args.qtype)
        print(f"wrote {path} in {time.perf_counter() - start:.1f} s")
    else:
        print(f"reusing {path}")
    return path, tmp


def measure(
    args: argparse.Namespace, path: Path, modes: list[str]
) -> dict[tuple[str, Member], dict[str, Any]]:
    """Every member in every mode, ``--rounds`` times taken in turns; medians."""
    runs: dict[tuple[str, Member], list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for mode in modes:
            for world, rank in MEMBERS[1:]:
                runs.setdefault((mode, (world, rank)), []).append(
                    run_member(args, path, world, rank, mode)
                )
            peaks = [r["peak_rss"] for m in MEMBERS[1:] for r in runs[mode, m] if "peak_rss" in r]
            estimate = 2 * max(peaks) if peaks else n_params() * 4.4  # if TP=2 failed
            free = available_bytes()
            if estimate > 0.85 * free:
                why = f"skipped: estimated peak {estimate / GiB:.1f} GiB > 85% of {free / GiB:.1f} GiB free"
                row: dict[str, Any] = {"world": 1, "rank": 0, "skipped": why}
            else:
                row = run_member(args, path, 1, 0, mode)
            runs.setdefault((mode, (1, 0)), []).append(row)
    return {key: median_row(rows) for key, rows in runs.items()}


def main() -> None:
    args = parse_args()
    if args.member:
        member_main(args)
        return
    path, tmp = prepare(args)
    file_size = path.stat().st_size
    modes = {"all": ["exact", "int8", "ggml", "auto"], "both": ["exact", "int8"]}.get(
        args.activations, [args.activations]
    )
    print(f"model            {n_params() / 1e9:.2f}B parameters, {file_size / GiB:.2f} GiB on disk "
          f"({args.qtype}), {args.threads} thread(s), KV cache for {args.cache_len} positions, "
          f"median of {args.rounds} round(s)")  # fmt: skip
    results = measure(args, path, modes)
    print_verdicts(results, modes, file_size)
    print("limit = file size / N + 15% + the member's KV cache; peak = peak RSS of the member's")
    print("process (from its start); PASS when peak <= limit")
    for world, rank in MEMBERS:
        r = results.get(("auto", (world, rank)))
        if r and "layout" in r:
            print(
                f"auto, TP={world} rank {rank}: {r['layout']} ({r.get('note') or 'the default fits'})"
            )
    print_breakdown(results, modes, file_size, estimates(path, LAYOUTS))
    print("MiB once loaded: after = RSS; anon / file = anonymous / file-backed (libraries, mapped")
    print("GGUF pages) RSS; loaded = anonymous bytes the load added (the share in the kernel's")
    print("layout); x file = loaded / the share's bytes in the file; peak-after = load scratch;")
    print("tok/s = decode on the member's share alone (--tokens); held = MiB of weights the")
    print("share holds (nbytes()), B/w = its bytes per weight (the file: 0.5625), est. =")
    print("what the file's tensor records predict for it (jobs.plans.held_sizes), before loading")
    if args.keep and tmp is not None:
        kept = Path.cwd() / path.name
        path.rename(kept)
        print(f"kept {kept}")
    if tmp is not None:
        tmp.cleanup()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--path", help="GGUF to use; written there first if missing, then kept")
    p.add_argument("--keep", action="store_true", help="keep the temporary GGUF (moved to .)")
    p.add_argument("--qtype", choices=sorted(QTYPES), default="Q4_0")
    p.add_argument("--tokens", type=int, default=0, help="decode smoke: tokens per member")
    p.add_argument("--cache-len", type=int, default=512, help="KV positions (prompt + max tokens)")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads per member")
    p.add_argument(
        "--activations",
        choices=("all", "both", "exact", "int8", "ggml", "auto"),
        default="all",
        help="layouts to measure: onnxruntime's exact and int8, ggml on the file's blocks, "
        "and auto (the layout of a member offering the target's memory, "
        "spec.capacity.memoryBytes: plans.choose_layout); default: all four side by side; both: exact and int8",
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds per member and mode (medians)")
    p.add_argument("--member", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--world", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == "__main__":
    main()
