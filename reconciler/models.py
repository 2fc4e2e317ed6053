"""Which model files a job may open on this device.

A Job's ``model`` written by the local user (``mesh inference --model PATH``,
``meshctl apply``) may be any path: the local user may read it anyway. What comes from
peers never is. The coordinator offers a model to the ring by *name*: ``demo`` or
``gemma3-270m`` (models that come in Python packages) or the file or folder name of the
model, and each member looks that name up only in its own model folders: ``$MESHNET_HOME/models`` and the folders listed
in ``MESHNET_MODEL_DIRS`` (``:``-separated), chosen by that device's owner. Jobs
submitted over the control plane's ``POST /v1/jobs`` are resolved the same way.

Toward a peer, every failure to find or open a model reads the same
(``NOT_AVAILABLE``), so offers cannot probe which files exist.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from reconciler.home import Home
from reconciler.inference.demo import MODEL_NAMES, named_model_path
from reconciler.inference.errors import ModelError

DEMO = "demo"
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
NOT_AVAILABLE = "the model is not available on this member"
SUBMITTED_BY = "meshnet.dev/submitted-by"
"""Annotation the control plane puts on Jobs a member submitted over HTTP."""


class ModelRefused(Exception):
    """A model name that does not resolve here (the message is safe to send to peers)."""

    def __init__(self, detail: str) -> None:
        super().__init__(NOT_AVAILABLE)
        self.detail = detail  # for this device's log only


def is_model_name(ref: str) -> bool:
    """``demo`` or a plain file/folder name (no path)."""
    return ref == DEMO or (MODEL_NAME.match(ref) is not None and ".." not in ref)


def model_dirs(home: Home) -> list[Path]:
    """Where this device's owner keeps models that peers may name."""
    extra = [Path(p).expanduser() for p in os.environ.get("MESHNET_MODEL_DIRS", "").split(":") if p]
    return [home.root / "models", *extra]


def resolve_name(ref: str, home: Home) -> Path:
    """The model a peer names; ModelRefused unless it is one of this device's models."""
    if ref in MODEL_NAMES:  # packaged models: 'demo', 'gemma3-270m'
        try:
            packaged = named_model_path(ref)
        except ModelError as err:  # its package is not installed here
            raise ModelRefused(str(err)) from err
        assert packaged is not None
        return packaged
    if not is_model_name(ref):
        raise ModelRefused(f"{ref!r} is not a model name")
    for folder in model_dirs(home):
        candidate = folder / ref
        if candidate.exists():
            return candidate
    raise ModelRefused(f"{ref!r} is in none of {', '.join(str(d) for d in model_dirs(home))}")


def resolve_local(ref: str, home: Home) -> Path:
    """The model of a Job the local user wrote: a model name, or any path."""
    if is_model_name(ref):
        try:
            return resolve_name(ref, home)
        except ModelRefused:
            pass
    return Path(ref).expanduser()


def job_model(ref: str, home: Home, submitted: bool) -> Path:
    """The model of a Job on its coordinator: a submitted Job (POST /v1/jobs, by a
    member) may only name a model; the local user's may be any path."""
    return resolve_name(ref, home) if submitted else resolve_local(ref, home)


def model_problem(ref: str, home: Home, submitted: bool) -> str | None:
    """Why a Job's model cannot be used here, or None (generic for submitted Jobs)."""
    try:
        path = job_model(ref, home, submitted)
    except ModelRefused as err:
        return str(err)
    except Exception as err:  # the demo model's package missing, a bad path ...
        return NOT_AVAILABLE if submitted else str(err)
    if not path.exists():
        return NOT_AVAILABLE if submitted else f"model path {ref} does not exist on this device"
    return None


def offered_name(ref: str, path: Path) -> str:
    """The name the coordinator offers for the model it resolved ``ref`` to."""
    return ref if ref in MODEL_NAMES else path.name


def resolve_model(ref: str) -> Path:
    """The local user's model: 'demo', a name in this device's model folders, or a path."""
    return resolve_local(ref, Home.default())
