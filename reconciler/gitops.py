"""GitOps: keep the store in step with a folder of manifests.

A new or changed file is applied; a deleted file deletes exactly the objects that came
from it (the inventory), never objects applied by hand; objects dropped from a file are
deleted too. An invalid file changes nothing: the last good version stays in place, and
the error (file:line) is recorded as an event and a `Synced=False` condition on the
objects that file owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from watchfiles import Change, awatch

from manifests import ManifestError
from manifests.loader import YAML_SUFFIXES, load_file
from reconciler.conditions import merge_conditions
from reconciler.controllers.base import ConditionSpec
from reconciler.store import NotFound, Store, utcnow

log = logging.getLogger("meshnet.gitops")

SOURCE_KIND = "Source"


class FolderSync:
    """Applies a folder's manifests to the store, file by file."""

    def __init__(self, store: Store, directory: Path) -> None:
        self.store = store
        self.directory = directory.resolve()

    def files(self) -> list[Path]:
        return sorted(
            p for p in self.directory.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file()
        )

    def sync_all(self) -> None:
        """Apply every file, and remove what came from files that are gone."""
        present = {str(p) for p in self.files()}
        for source in self.store.sources():
            if Path(source).parent == self.directory and source not in present:
                self.remove_file(Path(source))
        for path in self.files():
            self.apply_file(path)

    def sync_path(self, path: Path) -> None:
        """React to one changed path."""
        if path.suffix not in YAML_SUFFIXES or path.resolve().parent != self.directory:
            return
        if path.is_file():
            self.apply_file(path.resolve())
        else:
            self.remove_file(path.resolve())

    def apply_file(self, path: Path) -> None:
        source = str(path)
        try:
            loaded = load_file(path)
        except ManifestError as err:
            self._report_invalid(source, err)
            return
        keep = set()
        for item in loaded:
            obj, outcome = self.store.apply(item.obj, source=source)
            keep.add((obj.kind, obj.metadata.name))
            if outcome != "unchanged":
                log.info("%s %s %s from %s", obj.kind, obj.metadata.name, outcome, path.name)
            self._clear_synced(obj.kind, obj.metadata.name)
        for kind, name in self.store.inventory(source):
            if (kind, name) not in keep:
                self.store.delete(kind, name)
                log.info("%s %s deleted: no longer in %s", kind, name, path.name)

    def remove_file(self, path: Path) -> None:
        for kind, name in self.store.inventory(str(path)):
            self.store.delete(kind, name)
            log.info("%s %s deleted: %s was removed", kind, name, path.name)

    def _report_invalid(self, source: str, err: ManifestError) -> None:
        message = "; ".join(str(p) for p in err.problems)
        log.warning("not applying %s: %s", source, message)
        self.store.record_event(SOURCE_KIND, source, "Warning", "InvalidManifest", message)
        for kind, name in self.store.inventory(source):
            condition = ConditionSpec("Synced", "False", "InvalidManifest", message)
            self._set_condition(kind, name, [condition], clear=())

    def _clear_synced(self, kind: str, name: str) -> None:
        obj = self.store.get(kind, name)
        if obj is not None and obj.status.condition("Synced") is not None:
            self._set_condition(kind, name, [], clear=("Synced",))

    def _set_condition(
        self, kind: str, name: str, wanted: list[ConditionSpec], clear: tuple[str, ...]
    ) -> None:
        obj = self.store.get(kind, name)
        if obj is None:
            return
        status = obj.status.model_dump(mode="json", by_alias=True, exclude_none=True)
        status["conditions"] = merge_conditions(
            status.get("conditions", []), wanted, utcnow(), clear
        )
        with contextlib.suppress(NotFound):
            self.store.update_status(kind, name, status, obj.metadata.resource_version)


async def watch_folder(
    sync: FolderSync, stop: asyncio.Event, ready: asyncio.Event | None = None
) -> None:
    """Apply the folder, then follow its changes until `stop` is set."""
    sync.directory.mkdir(parents=True, exist_ok=True)
    sync.sync_all()
    log.info("watching %s for manifests", sync.directory)
    if ready is not None:
        ready.set()
    async for changes in awatch(sync.directory, stop_event=stop, debounce=200, step=25):
        for change, raw_path in sorted(changes, key=lambda c: c[1]):
            path = Path(raw_path)
            log.debug("%s %s", Change(change).name, path)
            try:
                sync.sync_path(path)
            except Exception:  # a watch must outlive any one bad file
                log.exception("syncing %s failed", path)
