"""The models the API offers: ``demo`` (the packaged SmolLM2) and the model directory.

The directory is ``$MESHNET_MODELS`` or ``$MESHNET_HOME/models``; each ``*.gguf`` file
and each folder holding a ``config.json`` (Hugging Face format) is a model, named by its
file or folder name. Clients name models only by these ids, never by a path. A pool
member loads the same model by the same path, so keep the directory at the same place
on every device (or use ``demo``).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from reconciler.home import Home
from reconciler.inference.demo import demo_model_path
from reconciler.inference.errors import ModelError


@dataclass(frozen=True)
class ModelEntry:
    """One model a client may name."""

    model_id: str
    ref: str  # what a Job's spec.model holds: "demo" or an absolute path
    created: int  # file time (seconds), as OpenAI's ``created``


def models_dir(home: Home) -> Path:
    override = os.environ.get("MESHNET_MODELS")
    return Path(override).expanduser() if override else home.root / "models"


def list_models(home: Home) -> list[ModelEntry]:
    """Every model here, ``demo`` first (when installed)."""
    demo = _demo_entry()
    found: list[ModelEntry] = [demo] if demo is not None else []
    folder = models_dir(home)
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return found
    for entry in entries:
        usable = entry.suffix == ".gguf" and entry.is_file()
        usable = usable or (entry.is_dir() and (entry / "config.json").is_file())
        if usable and entry.name != "demo":
            found.append(ModelEntry(entry.name, str(entry.resolve()), int(entry.stat().st_mtime)))
    return found


@functools.cache
def _demo_entry() -> ModelEntry | None:
    """The packaged demo model (looked up once: importlib.metadata is slow)."""
    try:
        demo = demo_model_path()
        return ModelEntry("demo", "demo", int(demo.stat().st_mtime))
    except (ModelError, OSError):
        return None


def find_model(home: Home, model_id: str) -> ModelEntry | None:
    return next((m for m in list_models(home) if m.model_id == model_id), None)
