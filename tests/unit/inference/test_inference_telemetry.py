"""onnxruntime's telemetry stays off: an agent talks to its pool and nothing else.

onnxruntime 1.29+ reports usage to a Microsoft host from Linux too, unless
``ORT_DISABLE_TELEMETRY`` is set when it initialises. Each case runs a fresh interpreter
(the test process has the variable set already) that loads onnxruntime the way the
engine does, builds and runs a session, and says what onnxruntime was started with.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

PROGRAM = """
import importlib.abc, os, sys
seen = []  # the variable as onnxruntime is first imported, whoever imports it

class Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "onnxruntime" and not seen:
            seen.append(os.environ.get("ORT_DISABLE_TELEMETRY"))
        return None

sys.meta_path.insert(0, Spy())
import numpy as np
from reconciler.inference.kernels.graph import GraphBuilder
from reconciler.inference.kernels.session import make_session
g = GraphBuilder(False)
g.output(g.op("Relu", [g.input("x", 4)]), "y", 4)
session, _ = make_session(g.model_bytes(), 1)
assert session.run(None, {"x": np.ones((1, 4), np.float32)})[0].shape == (1, 4)
print(seen)
"""


def _engine_process(extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env |= {"PYTHONPATH": str(REPO), **extra}
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    return done.stdout.strip()


def test_the_engine_starts_onnxruntime_with_telemetry_off() -> None:
    assert _engine_process({}) == "['1']"


def test_a_users_explicit_choice_is_kept() -> None:
    assert _engine_process({"ORT_DISABLE_TELEMETRY": "0"}) == "['0']"
