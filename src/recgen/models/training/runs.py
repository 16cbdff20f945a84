"""Where the trainer's run folders stand: how far each training got, its best validation epoch, whether it has
stopped, and how much is left; read by ``recgen runs``.

A run folder (``--run-dir`` of ``recgen train``, or one seed's folder under ``recgen bench --run-dir``) holds
``last.pt`` (weights, optimizer, training state: what ``--resume`` continues), ``best.pt``, ``config.json`` and,
written after ``last.pt`` at the end of every epoch, ``progress.json``: the training state without the weights (the
epoch log, best epoch and value, evaluations since the best, why it stopped) and the trainer settings that say what
is left (epochs, eval_every, patience). Status reads ``progress.json``, which any tool can read too; where it is
missing (a folder from before it was written) or older than ``last.pt`` (a run stopped between the two writes), it
reads the state from ``last.pt`` (checked against its seal) and the settings from ``config.json``.

What is left is given as a range of epochs: the fewest if validation never improves again (early stopping after
``patience`` evaluations), the most if it runs to ``epochs``; the time is the most at the last four epochs' pace
(validation included; the whole run's mean where the log has fewer). A time budget (``time_budget``) can stop a
run sooner; that is not counted.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from recgen.errors import ConfigError, IntegrityError
from recgen.io import read_json_file

PROGRESS = "progress.json"
PROGRESS_FORMAT = 1
_SETTINGS = ("epochs", "eval_every", "patience", "metric", "time_budget")
_STOPS = {"early_stopping": "early stopping", "time_budget": "time budget"}
RECENT = 4  # epochs whose mean wall time estimates what is left


def progress_record(settings: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """``progress.json``'s content: the trainer ``settings`` (``_SETTINGS``) and its state without weights; a best
    value not yet set (``-inf``) is written as null (JSON has no infinity)."""
    out = {"format": PROGRESS_FORMAT, **{k: settings.get(k) for k in _SETTINGS}, **state}
    if not math.isfinite(float(out.get("best_value") or 0.0)):
        out["best_value"] = None
    return out


@dataclass(frozen=True)
class RunStatus:
    """One run folder's state (see the module docstring)."""

    folder: str
    model: str | None
    seed: int | None
    epoch: int
    epochs: int | None
    eval_every: int | None
    patience: int | None
    metric: str | None
    best_epoch: int
    best_value: float | None
    bad_evals: int
    stop_reason: str
    wall_seconds: float
    saved_seconds_ago: float
    source: str  # the file the state came from: progress.json or last.pt
    recent_epoch_seconds: tuple[float, ...] = ()  # the wall time of the last few epochs (validation included)

    @property
    def finished(self) -> bool:
        return bool(self.stop_reason) or (self.epochs is not None and self.epoch >= self.epochs)

    @property
    def state(self) -> str:
        if self.stop_reason:
            return f"finished ({_STOPS.get(self.stop_reason, self.stop_reason)})"
        if self.finished:
            return "finished (all epochs)"
        return "resumable"

    @property
    def seconds_per_epoch(self) -> float | None:
        """The mean wall time of the last few epochs (a resumed run may have sped up or slowed down), else over
        the whole run."""
        if self.recent_epoch_seconds:
            return sum(self.recent_epoch_seconds) / len(self.recent_epoch_seconds)
        return self.wall_seconds / self.epoch if self.epoch and self.wall_seconds else None

    def epochs_left(self) -> tuple[int, int] | None:
        """(fewest, most) epochs left: early stopping if validation never improves again, or every epoch; None
        where the settings are unknown."""
        if self.finished:
            return (0, 0)
        if self.epochs is None:
            return None
        most = self.epochs - self.epoch
        if not self.eval_every or not self.patience:
            return (most, most)
        next_eval = (self.epoch // self.eval_every + 1) * self.eval_every
        stop_at = next_eval + (self.patience - self.bad_evals - 1) * self.eval_every
        return (max(min(stop_at - self.epoch, most), 1), most)

    def seconds_left_max(self) -> float | None:
        """The most time left: the most epochs left at ``seconds_per_epoch`` (None where either is unknown)."""
        left, spe = self.epochs_left(), self.seconds_per_epoch
        return left[1] * spe if left and spe is not None else None

    def as_dict(self) -> dict[str, Any]:
        left = self.epochs_left()
        return {
            **asdict(self),
            "state": self.state,
            "seconds_per_epoch": self.seconds_per_epoch,
            "epochs_left_min": left[0] if left else None,
            "epochs_left_max": left[1] if left else None,
            "seconds_left_max": self.seconds_left_max(),
        }


def find_runs(paths: Iterable[Path]) -> list[Path]:
    """Every run folder (one holding ``last.pt``) at or under ``paths``, sorted, each once."""
    found: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise ConfigError(f"{path}: no such folder; give a run folder (--run-dir of `recgen train` or `bench`)")
        if path.is_file():
            raise ConfigError(f"{path} is a file; give the run folder that holds it (or a folder above)")
        # a folder being copied under another results file's stem (``adopt_same_training``) is not a run yet
        found.update(p.parent for p in path.rglob("last.pt") if not p.parent.name.endswith(".copying"))
    if not found:
        shown = ", ".join(str(p) for p in paths)
        raise ConfigError(
            f"no training run under {shown}: a run folder holds last.pt, written by `recgen train` or "
            "`recgen bench` with --run-dir"
        )
    return sorted(found)


def read_status(folder: Path, name: str | None = None, now: float | None = None) -> RunStatus:
    """The state of the run in ``folder`` (see the module docstring); ``name`` is how it is shown (default: the
    folder). Raises IntegrityError for an unreadable ``last.pt`` / ``progress.json`` / ``config.json``."""
    hint = f"the run in {folder} cannot be resumed as it is; delete the folder and train again"
    last, progress, config_path = folder / "last.pt", folder / PROGRESS, folder / "config.json"
    config = read_json_file(config_path, hint) if config_path.exists() else {}
    if not isinstance(config, dict):
        raise IntegrityError(f"{config_path}: not a run config (a JSON object expected); {hint}")
    record: dict[str, Any] | None = None
    if progress.exists() and progress.stat().st_mtime >= last.stat().st_mtime:
        record = read_json_file(progress, hint)
        if not isinstance(record, dict) or record.get("format") != PROGRESS_FORMAT or "epoch" not in record:
            raise IntegrityError(f"{progress}: not a recgen progress file (format {PROGRESS_FORMAT}); {hint}")
        source = PROGRESS
    else:
        from recgen.models.training.trainer import load_checkpoint

        ckpt = load_checkpoint(last)
        state = ckpt.get("state") if isinstance(ckpt, dict) else None
        if not isinstance(state, dict) or "epoch" not in state:
            raise IntegrityError(f"{last}: a checkpoint without a training state (not written by recgen's trainer)")
        record = progress_record(config, state)
        source = "last.pt"
    best = record.get("best_value")

    def number(key: str) -> int | None:
        value = record.get(key)
        return int(value) if isinstance(value, (int, float)) else None

    return RunStatus(
        folder=name or str(folder),
        model=config.get("model"),
        seed=config.get("seed") if isinstance(config.get("seed"), int) else None,
        epoch=int(record["epoch"]),
        epochs=number("epochs"),
        eval_every=number("eval_every"),
        patience=number("patience"),
        metric=record.get("metric"),
        best_epoch=int(record.get("best_epoch") or 0),
        best_value=float(best) if isinstance(best, (int, float)) and math.isfinite(best) else None,
        bad_evals=int(record.get("bad_evals") or 0),
        stop_reason=str(record.get("stop_reason") or ""),
        wall_seconds=float(record.get("wall_seconds") or 0.0),
        saved_seconds_ago=max((now if now is not None else time.time()) - last.stat().st_mtime, 0.0),
        source=source,
        recent_epoch_seconds=recent_epochs(record.get("log") or []),
    )


def recent_epochs(log: list[dict[str, Any]], n: int = RECENT) -> tuple[float, ...]:
    """The wall seconds of the last ``n`` epochs of a trainer log (``wall_seconds`` is the run's clock at each
    epoch's end, resumed parts included; the first epoch after a resume also holds the resume's start-up)."""
    clock = [e.get("wall_seconds") for e in log if isinstance(e, dict)]
    if len(clock) < 2 or any(not isinstance(c, (int, float)) for c in clock):
        return ()
    deltas = [b - a for a, b in zip(clock[:-1], clock[1:], strict=True)]
    return tuple(d for d in deltas[-n:] if d > 0)


def run_statuses(paths: Iterable[Path]) -> tuple[list[RunStatus], list[str]]:
    """The status of every run folder at or under ``paths`` (named relative to the folder the paths share) and
    one line per folder that could not be read."""
    paths = list(paths)
    now = time.time()
    statuses, errors = [], []
    folders = find_runs(paths)
    root = Path(os.path.commonpath([p.absolute() for p in paths]))
    for folder in folders:
        name = str(folder) if folder.absolute() == root else str(folder.absolute().relative_to(root))
        try:
            statuses.append(read_status(folder, name, now))
        except IntegrityError as exc:
            errors.append(str(exc))
    return statuses, errors


def duration(seconds: float | None) -> str:
    """``3 h 05 min``, ``12 min``, ``40 s`` (``?`` for None)."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
