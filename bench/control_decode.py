"""Decoding job control messages (header + JSON, typed by jobs/fields.py): microseconds
per decode of an OFFER with a 2,000-token prompt, a READY and a DONE; median of 5.

    python bench/control_decode.py [--prompt 2000]

Run it on two checkouts (PYTHONPATH=one, then the other) in the same session to compare.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import timeit

from reconciler.inference.sampling import SamplingParams
from reconciler.jobs.messages import (
    JobDone,
    JobOffer,
    JobReady,
    MemberStats,
    Participant,
    decode,
    encode,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", type=int, default=2000, help="prompt tokens in the OFFER")
    args = parser.parse_args()
    members = (Participant("node-a", 0, 4096), Participant("node-b", 4096, 8192))
    offer = JobOffer("j", 7, "demo", tuple(range(args.prompt)), SamplingParams(max_tokens=64),
                     3, "ab" * 32, 8192, members)  # fmt: skip
    stats = MemberStats("node-a", 0, 4096, 1.5, 0.5, 10, 2, 3, 4.0, 99, 2.0, 5)
    frames = {
        f"offer ({args.prompt} ids)": encode(offer),
        "ready": encode(JobReady("j", 7, "node-a", 12.5, 4096)),
        "done": encode(JobDone("j", 7, stats)),
    }
    for name, data in frames.items():
        once = functools.partial(decode, data)
        runs = [min(timeit.repeat(once, number=200, repeat=3)) / 200 for _ in range(5)]
        print(f"{name:18} {statistics.median(runs) * 1e6:9.1f} us per decode")


if __name__ == "__main__":
    main()
