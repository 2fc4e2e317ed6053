"""Job.spec.parallelism, wire and draftTokens: defaults, and clear errors with places."""

from __future__ import annotations

import pytest

from manifests import Job, ManifestError, load_text
from manifests.schema import kind_schema

JOB = """\
apiVersion: meshnet.dev/v1alpha1
kind: Job
metadata:
  name: hello
spec:
  pool: test-pool
  prompt: hi
"""


def test_defaults_let_the_planner_choose() -> None:
    (item,) = load_text(JOB, "job.yaml")
    assert isinstance(item.obj, Job)
    spec = item.obj.spec
    assert (spec.parallelism, spec.wire, spec.draft_tokens) == ("auto", "auto", 0)


def test_every_plan_and_wire_loads() -> None:
    for parallelism in ("auto", "tensor", "pipeline", "single"):
        for wire in ("auto", "f32", "q80"):
            text = JOB + f"  parallelism: {parallelism}\n  wire: {wire}\n  draftTokens: 4\n"
            (item,) = load_text(text, "job.yaml")
            assert isinstance(item.obj, Job)
            assert (item.obj.spec.parallelism, item.obj.spec.wire) == (parallelism, wire)


@pytest.mark.parametrize(
    ("extra", "where", "says"),
    [
        ("  parallelism: ring\n", "job.yaml:8:3 spec.parallelism", "'pipeline' or 'single'"),
        ("  wire: int4\n", "job.yaml:8:3 spec.wire", "'f32' or 'q80'"),
        ("  draftTokens: 99\n", "job.yaml:8:3 spec.draftTokens", "less than or equal to 16"),
    ],
)
def test_bad_values_say_where_and_what(extra: str, where: str, says: str) -> None:
    with pytest.raises(ManifestError) as bad:
        load_text(JOB + extra, "job.yaml")
    text = str(bad.value)
    assert where in text and says in text, text


def test_the_schema_documents_the_new_fields() -> None:
    spec = kind_schema("Job")["$defs"]["JobSpec"]["properties"]
    assert spec["parallelism"]["enum"] == ["auto", "tensor", "pipeline", "single"]
    assert "q80" in spec["wire"]["description"] and spec["draftTokens"]["maximum"] == 16
