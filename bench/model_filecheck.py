"""What a hostile GGUF file costs, with and without the checks (finding 8).

Writes a GGUF file holding one array of N empty strings (2 MB for N = 262,144), then
times, side by side in one run: gguf's reader parsing it (and its peak memory, in a
child process so it is the reader's alone), and ``filecheck.check_gguf`` refusing it.
Also times the check on the demo model (the cost every real load pays, once).

    python bench/model_filecheck.py [--count 262144]
"""

from __future__ import annotations

import argparse
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler.inference.demo import demo_model_path
from reconciler.inference.errors import ModelError
from reconciler.inference.filecheck import check_gguf

READER = """
import resource, sys, time, gguf
start = time.perf_counter()
gguf.GGUFReader(sys.argv[1])
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def hostile(path: Path, count: int) -> Path:
    key = b"tokenizer.ggml.tokens"
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
    array = struct.pack("<IIQ", 9, 8, count) + struct.pack("<Q", 0) * count
    path.write_bytes(header + array)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=262_144)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = hostile(Path(tmp) / "strings.gguf", args.count)
        size = path.stat().st_size
        out = subprocess.run([sys.executable, "-c", READER, str(path)], capture_output=True,
                             text=True, check=True).stdout.split()  # fmt: skip
        start = time.perf_counter()
        try:
            check_gguf(path)
            verdict = "accepted"
        except ModelError:
            verdict = "refused"
        checked = time.perf_counter() - start
    print(f"GGUF of {args.count} empty strings ({size} B):")
    print(f"  gguf.GGUFReader: {float(out[0]):.2f} s, peak {float(out[1]):.0f} MB")
    print(f"  check_gguf: {verdict} in {checked * 1e3:.2f} ms")
    demo = demo_model_path()
    start = time.perf_counter()
    check_gguf(demo)
    print(f"check_gguf on the demo model ({demo.stat().st_size >> 20} MiB): "
          f"{(time.perf_counter() - start) * 1e3:.0f} ms, peak of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
