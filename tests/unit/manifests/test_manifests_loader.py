"""Loading manifests: valid documents, and every problem reported with file:line:col."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from manifests import Job, ManifestError, Member, Pool, load_manifests, load_text
from manifests.durations import format_duration, parse_duration
from manifests.fields import positive_size

GOLDEN = Path(__file__).parent / "golden"
POOL = """\
apiVersion: meshnet.dev/v1alpha1
kind: Pool
metadata:
  name: test-pool
spec:
  admission: approve
  discovery: {beaconInterval: 2s, staticPeers: ["192.0.2.20:42424", "[::1]:42424"]}
"""


def test_pool_defaults_and_camel_case_fields() -> None:
    (item,) = load_text(POOL, "pool.yaml")
    pool = item.obj
    assert isinstance(pool, Pool)
    assert pool.spec.admission == "approve"
    assert pool.spec.network_id == "default"
    assert pool.spec.discovery.beacon_interval == 2.0
    assert pool.spec.discovery.group == "239.192.0.1"
    assert pool.spec.discovery.port == 42424
    assert pool.spec.ring.shard_columns == 8192
    assert pool.spec.discovery.static_peers == ["192.0.2.20:42424", "[::1]:42424"]
    assert (item.source, item.line) == ("pool.yaml", 1)


def test_multi_document_file_loads_every_kind(tmp_path: Path) -> None:
    member = """apiVersion: meshnet.dev/v1alpha1
kind: Member
metadata: {name: laptop}
spec:
  pool: {name: test-pool, id: pool-1, rootFingerprint: "sha256:%s"}
  tokenFile: ~/.meshnet/token
""" % ("ab" * 32)
    job = (
        "apiVersion: meshnet.dev/v1alpha1\nkind: Job\nmetadata: {name: j}\n"
        "spec: {pool: test-pool, prompt: Hi}\n"
    )
    path = tmp_path / "all.yaml"
    path.write_text(POOL + "---\n" + member + "---\n" + job + "---\n")
    kinds = [type(item.obj) for item in load_manifests(path)]
    assert kinds == [Pool, Member, Job]
    assert [item.line for item in load_manifests(path)][1] == 9


def _offering(memory: str) -> str:
    """A Member manifest offering ``memory`` (as written in YAML) on line 6."""
    return f"""apiVersion: meshnet.dev/v1alpha1
kind: Member
metadata: {{name: laptop}}
spec:
  pool: {{name: test-pool, id: pool-1, rootFingerprint: "sha256:{"ab" * 32}"}}
  capacity: {{memoryBytes: {memory}}}
"""


@pytest.mark.parametrize(
    ("text", "size"),
    [("8GiB", 8 << 30), ("8Gi", 8 << 30), ("512Mi", 512 << 20), ("1.5GB", 1_500_000_000),
     ("4096", 4096)],
)  # fmt: skip
def test_a_members_offer_is_bytes_or_a_size_with_a_unit(text: str, size: int) -> None:
    (item,) = load_text(_offering(text), "member.yaml")
    assert isinstance(item.obj, Member) and item.obj.spec.capacity.memory_bytes == size
    dumped = item.obj.model_dump(mode="json", by_alias=True)
    assert dumped["spec"]["capacity"]["memoryBytes"] == size  # stored as bytes


@pytest.mark.parametrize("text", ["lots", "0", "0GiB", "8Gx", "Gi"])
def test_a_members_offer_must_be_a_positive_size(text: str) -> None:
    with pytest.raises(ManifestError, match=r"member.yaml:6:\d+ spec.capacity.memoryBytes"):
        load_text(_offering(text), "member.yaml")


def test_a_size_in_text_reads_as_a_members_offer_does() -> None:
    """MESHNET_MEMORY_OFFER and `mesh pool-join --memory-offer` take the same sizes."""
    assert positive_size("8Gi") == positive_size("8GiB") == 8 << 30
    assert positive_size(" 512Mi ") == 512 << 20
    assert positive_size("0") is None and positive_size("lots") is None


def test_folder_loads_yaml_files_in_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(POOL.replace("test-pool", "b"))
    (tmp_path / "a.yml").write_text(POOL.replace("test-pool", "a"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert [i.obj.metadata.name for i in load_manifests(tmp_path)] == ["a", "b"]


def test_duplicate_objects_are_an_error() -> None:
    with pytest.raises(ManifestError, match="defined twice"):
        load_text(POOL + "---\n" + POOL, "dup.yaml")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        load_manifests(tmp_path / "absent.yaml")


def test_job_needs_exactly_one_input() -> None:
    text = "apiVersion: meshnet.dev/v1alpha1\nkind: Job\nmetadata: {name: j}\nspec: {pool: p}\n"
    with pytest.raises(ManifestError, match="exactly one of prompt or messages"):
        load_text(text, "job.yaml")


@pytest.mark.parametrize("case", sorted(p.stem for p in GOLDEN.glob("*.yaml")))
def test_golden_errors(case: str) -> None:
    """Each bad manifest's full error text is pinned (UPDATE_GOLDEN=1 rewrites)."""
    source = GOLDEN / f"{case}.yaml"
    with pytest.raises(ManifestError) as caught:
        load_manifests(source)
    text = str(caught.value).replace(str(GOLDEN) + os.sep, "") + "\n"
    expected = GOLDEN / f"{case}.err"
    if os.environ.get("UPDATE_GOLDEN"):
        expected.write_text(text)
    assert text == expected.read_text()


@pytest.mark.parametrize(
    ("text", "seconds"), [("5s", 5.0), ("1m30s", 90.0), ("500ms", 0.5), ("24h", 86400.0), (3, 3.0)]
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "s5", "5 s", "-1s", "0s", "1y"])
def test_bad_durations(text: str) -> None:
    if text == "5":
        assert parse_duration(text + "s") == 5.0
        return
    with pytest.raises(ValueError):
        parse_duration(text)


def test_durations_round_trip() -> None:
    for seconds in (0.5, 5.0, 90.0, 3600.0, 86400.0):
        assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    "text",
    ["? {a: {b: 1}}\n: x\n", "{{a: {b: 1}}: x}\n", "[" * 5000 + "]" * 5000],
    ids=["mapping-key", "flow-mapping-key", "deep-nesting"],
)
def test_yaml_the_parser_chokes_on_is_a_manifest_error(text: str) -> None:
    """Found by bench/fuzz.py: a mapping used as a key raised TypeError from ruamel,
    and deep nesting a RecursionError, instead of the loader's ManifestError."""
    with pytest.raises(ManifestError) as err:
        load_text(text, "bad.yaml")
    assert "invalid YAML" in str(err.value)


def test_a_kind_that_is_not_a_string_is_a_manifest_error() -> None:
    """Found by bench/fuzz.py: ``kind: {maxTokens: 32}`` raised TypeError (unhashable)."""
    with pytest.raises(ManifestError, match="unknown kind"):
        load_text("apiVersion: meshnet.dev/v1alpha1\nkind:\n  maxTokens: 32\n", "bad.yaml")


def test_unclosed_bracket_is_reported_where_it_opens() -> None:
    """The parser gives up later (here at the `}` and at the end); the person needs line 6."""
    lines = [*POOL.splitlines()[:5], "  discovery: {staticPeers: [192.0.2.20:42424}", "  ring:", "    shardColumns: 8192"]
    with pytest.raises(ManifestError) as caught:
        load_text("\n".join(lines) + "\n", "pool.yaml")
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (6, 28)
    assert "flow sequence that starts here is never closed" in problem.message


def test_bad_indentation_is_reported_where_the_parser_stops() -> None:
    text = "apiVersion: meshnet.dev/v1alpha1\nkind: Pool\nmetadata:\n  name: a\n bad: 1\n"
    with pytest.raises(ManifestError) as caught:
        load_text(text, "pool.yaml")
    assert caught.value.problems[0].line == 5
