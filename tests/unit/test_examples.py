"""Every example manifest loads, and the kinds they show are the ones they say."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests import load_manifests

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    "folder", sorted(p for p in EXAMPLES.iterdir() if p.is_dir()), ids=lambda p: p.name
)
def test_example_folder_is_valid(folder: Path) -> None:
    loaded = load_manifests(folder)
    assert loaded, f"{folder} has no manifests"


def test_examples_cover_every_kind() -> None:
    kinds = {
        item.obj.kind
        for folder in EXAMPLES.iterdir()
        if folder.is_dir()
        for item in load_manifests(folder)
    }
    assert kinds == {"Pool", "Member", "Job"}
