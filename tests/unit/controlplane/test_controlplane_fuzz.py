"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis):
whatever a member or an anonymous client sends, the answer is never a 5xx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
import schemathesis
from hypothesis import settings

from reconciler.controlplane.app import create_app
from reconciler.home import Home

SCHEMA = schemathesis.openapi.from_dict(
    create_app(Home(Path("/nonexistent")), pools=[]).openapi()
).exclude(path_regex="/events$")  # a stream that lasts until the job ends: test_controlplane_api
SCHEMA = SCHEMA.exclude(path_regex="completions$")  # runs a model (needs an agent): test_openai_api


@SCHEMA.parametrize()
@settings(max_examples=30, deadline=None)
def test_no_server_errors(case: Any, fuzz_target: tuple[str, requests.Session]) -> None:
    base_url, session = fuzz_target
    response = case.call(base_url=base_url, session=session, timeout=10, verify=False)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
