"""Model versions: a registry folder of saved models, one active, swapped in without failing a request in flight.

A registry is a folder of model folders (``versions/<name>/``, each written by ``Recommender.save``) with
``active.json`` naming the active one and the history of activations (for roll back), written atomically. A plain
model folder can be served too: a registry of one version that cannot be switched.

Serving reads the active model through ``ModelRegistry.current()``: a (version, model) pair replaced as one
reference when another version is activated. A request takes the pair once and uses it to the end, so a swap never
fails a request in flight; the new model is loaded completely (and checked) before the swap. A running server also
notices activations made by another process (``recgen retrain``) by the file's modification time, checked at most
once a second.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path
from typing import Any

from recgen.errors import ConfigError, DataError
from recgen.io import atomic_write_json
from recgen.models.base import Recommender

ACTIVE = "active.json"


class ModelRegistry:
    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_dir():
            raise ConfigError(f"model folder or registry not found: {path}; train one with `recgen train --out DIR`")
        self.single = (path / "config.json").is_file()  # a plain model folder: one version
        self.path = path
        self._lock = threading.Lock()
        self._current: tuple[str, Recommender] | None = None
        self._seen_mtime = 0.0
        self._checked = 0.0
        if not self.single and not self.versions():
            raise ConfigError(f"{path} holds no model versions (versions/<name>/config.json); train one there")
        self._load_active()

    # ------------------------------------------------------------------------------------ reading
    def versions(self) -> list[str]:
        if self.single:
            return [self.path.name]
        folder = self.path / "versions"
        return sorted(p.name for p in folder.iterdir() if (p / "config.json").is_file()) if folder.is_dir() else []

    def state(self) -> dict[str, Any]:
        """``{"active": name, "history": [{"version", "at"}, ...]}`` (the newest version when none is recorded)."""
        if self.single:
            return {"active": self.path.name, "history": []}
        file = self.path / ACTIVE
        if file.is_file():
            try:
                return json.loads(file.read_text())
            except json.JSONDecodeError as exc:
                raise DataError(f"{file}: not valid JSON ({exc}); activate a version again") from None
        return {"active": self.versions()[-1], "history": []}

    def folder(self, version: str) -> Path:
        if self.single:
            if version != self.path.name:
                raise KeyError(version)
            return self.path
        folder = self.path / "versions" / version
        if not (folder / "config.json").is_file():
            raise KeyError(version)
        return folder

    def current(self) -> tuple[str, Recommender]:
        """The active (version, model), reloaded when another process changed the activation."""
        now = time.monotonic()
        if not self.single and now - self._checked > 1.0:
            self._checked = now
            file = self.path / ACTIVE
            mtime = file.stat().st_mtime if file.is_file() else 0.0
            if mtime != self._seen_mtime:
                self._load_active()
        assert self._current is not None
        return self._current

    def _load_active(self) -> None:
        with self._lock:
            file = self.path / ACTIVE
            self._seen_mtime = file.stat().st_mtime if file.is_file() else 0.0
            version = self.state()["active"]
            if self._current is None or self._current[0] != version:
                model = Recommender.load(self.folder(version))  # loaded and checked before the swap
                self._current = (version, model)

    # ------------------------------------------------------------------------------------ writing
    def activate(self, version: str) -> str:
        """Make ``version`` the active one (loaded first; the swap is one assignment)."""
        if self.single:
            raise ConfigError("this server serves a single model folder; serve a registry to switch versions")
        self.folder(version)  # KeyError for an unknown version
        with self._lock:
            model = Recommender.load(self.folder(version))
            state = self.state()
            history = [*state.get("history", []), {"version": version, "at": _now()}]
            atomic_write_json(self.path / ACTIVE, {"active": version, "history": history})
            self._seen_mtime = (self.path / ACTIVE).stat().st_mtime
            self._current = (version, model)
        return version

    def rollback(self) -> str:
        """Activate the version that was active before the current one."""
        history = self.state().get("history", [])
        if len(history) < 2:
            raise ConfigError("no earlier activation to roll back to")
        previous = history[-2]["version"]
        self.activate(previous)
        return previous

    def add_version(self, model: Recommender, name: str | None = None, *, info: dict[str, Any] | None = None) -> str:
        """Save ``model`` as a new version (not activated); returns its name."""
        if self.single:
            raise ConfigError("a single model folder holds one version; create a registry folder for versions")
        name = name or f"v{len(self.versions()) + 1:03d}-{model.name}-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}"
        model.save(self.path / "versions" / name)
        if info is not None:
            atomic_write_json(self.path / "versions" / name / "version.json", info)
        return name


def create_registry(path: str | Path, model: Recommender, name: str = "v001") -> ModelRegistry:
    """A new registry folder holding ``model`` as its first, active version."""
    path = Path(path)
    model.save(path / "versions" / name)
    atomic_write_json(path / ACTIVE, {"active": name, "history": [{"version": name, "at": _now()}]})
    return ModelRegistry(path)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
