"""Results files: what every benchmark and study writes, and how they are read back.

A results file holds everything needed to trust and redo its numbers: dataset (name, fingerprint, counts),
protocol, model, resolved config, seeds, valid and test metrics (mean, std and per seed), timings and throughput,
the machine (with its matmul peak measured in the same run), recgen version, git commit and the command line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from recgen import __version__
from recgen.config import to_dict
from recgen.data.split import ITEM_COLD_FRAC, USER_COLD_FRAC, USER_COLD_MAX_TRAIN
from recgen.errors import ConfigError, DataError
from recgen.io import atomic_write_json, check_json_seal, seal_json
from recgen.models.registry import get_model_class

HEADLINE = ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "mrr")


DEFAULT_RESULTS_DIR = Path("benchmarks/results")


def matmul_peak_gflops(n: int = 2048, seconds: float = 1.0) -> float:
    """Measured fp32 matmul throughput of this machine (GFLOP/s), the reference point for speed figures."""
    import torch

    a = torch.randn(n, n)
    b = torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        reps += 1
    return 2.0 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def git_commit() -> str | None:
    """The commit of the code that runs ("-dirty" where src/ differs from it). ``RECGEN_GIT_COMMIT``, when set,
    names it instead: for a copy of the source sent to another machine, whose git metadata (if any) can be older
    than the code it carries."""
    return os.environ.get("RECGEN_GIT_COMMIT") or _git_commit()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        if out.returncode != 0:
            return None
        # "dirty" = the code that runs differs from the commit (edits to docs or results do not count)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":/src", ":/pyproject.toml"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info(measure_peak: bool = True) -> dict[str, Any]:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    if measure_peak:
        info["matmul_peak_gflops"] = round(matmul_peak_gflops(), 1)
    return info


def mean_std(values: Sequence[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    keys = values[0].keys()
    mean = {k: float(np.mean([v[k] for v in values])) for k in keys}
    std = {k: float(np.std([v[k] for v in values], ddof=1)) if len(values) > 1 else 0.0 for k in keys}
    return mean, std


def headline(metrics: dict[str, float]) -> str:
    """The headline metrics as one log line fragment."""
    return ", ".join(f"{k}={metrics[k]:.4f}" for k in HEADLINE)


def aggregate(
    per_seed: list[dict[str, Any]], seeds_planned: int, peak: float | None, load_seconds: float
) -> dict[str, Any]:
    """The fields of a results file computed from its per-seed entries: means and spreads, timings, speeds."""
    valid_mean, valid_std = mean_std([e["valid"] for e in per_seed])
    test_mean, test_std = mean_std([e["test"] for e in per_seed])
    return {
        "seeds": [e["seed"] for e in per_seed],
        "seeds_planned": seeds_planned,
        "complete": len(per_seed) == seeds_planned,
        "valid": valid_mean,
        "valid_std": valid_std,
        "test": test_mean,
        "test_std": test_std,
        "per_seed": per_seed,
        "timings": {
            "load_split_seconds": load_seconds,
            "fit_seconds_mean": float(np.mean([e["fit_seconds"] for e in per_seed])),
            "eval_seconds_mean": float(np.mean([e["eval_seconds"] for e in per_seed])),
        },
        "throughput": {
            "eval_users_per_second": float(np.mean([e["eval_users_per_second"] for e in per_seed])),
            "matmul_peak_gflops": peak,
            **{
                key: float(np.mean([e["train_speed"][key] for e in per_seed]))
                for key in ("train_samples_per_second", "achieved_gflops", "mfu")
                if all(key in e.get("train_speed", {}) for e in per_seed)
            },
        },
        **(
            {"peak_rss_mb": max(e["peak_rss_mb"] for e in per_seed)}
            if all("peak_rss_mb" in e for e in per_seed)
            else {}
        ),  # fmt: skip
        "best_epochs": [e["best_epoch"] for e in per_seed],
        "git_commits": sorted({e["git_commit"] for e in per_seed if e.get("git_commit")}),
    }


def speeds(per_seed: list[dict[str, Any]], throughput: dict[str, Any]) -> dict[str, Any]:
    """Mean fit time, evaluation and training speeds of some seeds (one device's, in a mixed-device merge)."""
    agg = aggregate(per_seed, len(per_seed), throughput.get("matmul_peak_gflops"), 0.0)
    return {
        "seeds": agg["seeds"],
        "fit_seconds_mean": agg["timings"]["fit_seconds_mean"],
        **{k: v for k, v in agg["throughput"].items() if k != "matmul_peak_gflops"},
    }


def fit_seconds_cell(r: dict[str, Any], digits: int = 1) -> str:
    """A results file's mean fit seconds for a table cell; a merge of seeds run on several devices holds one mean per
    device (``throughput_by_device``), shown apart ("cuda 120.0 / cpu 980.0"), never averaged across devices."""
    if by_device := r.get("throughput_by_device"):
        return " / ".join(f"{d} {v['fit_seconds_mean']:.{digits}f}" for d, v in by_device.items())
    return f"{r['timings']['fit_seconds_mean']:.{digits}f}"


def with_defaults(model: str | None):
    """config (as a results file holds it, JSON) -> the same config with every field the model's Config has gained
    since filled in at its default: a file written before a field existed ran with the behaviour that default keeps
    (the convention every new config field follows), so the two are the same run. Used by ``bench --resume`` and
    ``merge-results``."""
    try:
        defaults = json.loads(json.dumps(to_dict(get_model_class(model).Config()), default=str))
    except ConfigError:  # a model this version does not know: compare the configs as written
        defaults = {}
    return lambda cfg: {**defaults, **(cfg or {})}


def settings_tag(sets: dict[str, Any] | None) -> str:
    """``__<hash>`` naming a study run made with ``--set`` settings; "" without (its plain name stays)."""
    if not sets:
        return ""
    return "__" + hashlib.sha1(json.dumps(sets, sort_keys=True, default=str).encode()).hexdigest()[:8]


def result_filename(result: dict[str, Any]) -> str:
    cfg_hash = hashlib.sha256(json.dumps(result["config"], sort_keys=True).encode()).hexdigest()[:8]
    p = result["protocol"]
    proto = p.get("name", "protocol")
    if "valid_frac" in p:  # e.g. temporal-v10-t20: the split's fractions are part of what was run
        proto += f"-v{round(100 * p['valid_frac'])}-t{round(100 * p['test_frac'])}"
    if proto in ("item-cold-start", "user-cold-start"):  # e.g. item-cold-start-c10: a share other than the default
        item = proto == "item-cold-start"
        frac, n = p.get("cold_frac"), p.get("max_train", USER_COLD_MAX_TRAIN)
        if frac is not None and (frac != (ITEM_COLD_FRAC if item else USER_COLD_FRAC) or n != USER_COLD_MAX_TRAIN):
            proto += f"-c{round(100 * frac)}" + ("" if item else f"-n{n}")
    if p.get("eval_users"):  # a user subsample is a different measurement
        proto += f"-u{p['eval_users']}"
    return f"{result['dataset']}__{result['model']}__{proto}__{cfg_hash}.json"


def write_result(result: dict[str, Any], out_dir: str | Path) -> Path:
    """Write a bench results JSON atomically under its canonical file name."""
    return write_json(result, Path(out_dir) / result_filename(result))


def write_json(result: dict[str, Any], path: str | Path) -> Path:
    """Write any results JSON atomically (temp file + rename), so a crash never leaves half a file, sealed with
    the SHA-256 of its content (``recgen.io.seal_json``), so an edited or corrupted figure is caught when read."""
    return atomic_write_json(path, seal_json({k: v for k, v in result.items() if k != "_path"}))


def read_result(path: str | Path) -> dict[str, Any]:
    """One results file, parsed and checked against its seal (files written before seals are read as they are).

    Raises:
        DataError: not valid JSON (truncated, corrupt); IntegrityError: the content does not match its seal.
    """
    path = Path(path)
    hint = f"restore it (e.g. `git checkout -- {path}`), rerun the command stored in it, or move it out of the folder"
    try:
        r = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a valid results file ({exc}); {hint}") from None
    if isinstance(r, dict):
        check_json_seal(r, path, hint)
    return r


@contextmanager
def results_lock(folder: str | Path) -> Iterator[None]:
    """An exclusive lock on a results folder (``flock`` on the folder itself: no lock file is left behind), held
    while a run reads, merges and rewrites its results file, so concurrent runs never drop each other's seeds."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not on POSIX: no inter-process lock
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def provenance(commit: str | None, command: str | None, *, measure_peak: bool = True) -> dict[str, Any]:
    """The fields every results file ends with: machine, recgen version, git commit, command line, time."""
    return {
        "machine": machine_info(measure_peak),
        "recgen_version": __version__,
        "git_commit": commit,
        "command": command or " ".join(["recgen", *sys.argv[1:]]),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def read_json_results(folder: str | Path) -> list[dict[str, Any]]:
    """Every results JSON in ``folder`` (any recgen schema), sorted by file name, with ``_path`` set; JSON files
    without a recgen schema are skipped. The one reader behind every results loader.

    Raises:
        DataError: a file that is not valid JSON (truncated or corrupt): it would otherwise vanish from every
            table without a word.
    """
    out = []
    for p in sorted(Path(folder).glob("*.json")):
        r = read_result(p)
        if isinstance(r, dict) and isinstance(r.get("schema"), str):
            r["_path"] = str(p)
            out.append(r)
    return out


def is_bench_result(r: dict[str, Any]) -> bool:
    return r["schema"].startswith("recgen-bench")


def load_results(results_dir: str | Path = DEFAULT_RESULTS_DIR) -> list[dict[str, Any]]:
    return [r for r in read_json_results(results_dir) if is_bench_result(r)]


def earlier_run(path: Path, ours: dict[str, Any], full) -> Path:
    """A results file of the same run made before the model's config gained fields (so its name hashes fewer
    fields): same dataset, model and protocol, equal on every field it has, and ours at the default on the rest
    (``full``: ``with_defaults``). ``path`` itself when there is none."""
    prefix = path.name.rsplit("__", 1)[0] + "__"
    for other in sorted(path.parent.glob(prefix + "*.json")):
        if full(read_result(other).get("config", {})) == ours:
            return other
    return path


def resumable_seeds(
    path: Path, fingerprint: str, config: dict[str, Any], protocol: str, seeds: int, log
) -> list[dict[str, Any]]:
    """Per-seed entries of an earlier results file that this run may keep (``--resume``). ``config`` is ours as
    JSON; only the fields the file has are compared (fields added since are checked by ``earlier_run``)."""
    if not path.exists():
        log(f"resume: no earlier results file {path.name}; running all the seeds asked for")
        return []
    old = read_result(path)
    mismatch = [
        name
        for name, ours, theirs in (
            ("dataset fingerprint", fingerprint, old.get("dataset_fingerprint")),
            ("config", {k: v for k, v in config.items() if k in old.get("config", config)}, old.get("config")),
            ("protocol", protocol, old.get("protocol", {}).get("name")),
        )
        if ours != theirs
    ]
    if mismatch:
        raise ConfigError(
            f"--resume: {path} was made with a different {', '.join(mismatch)}; "
            "run without --resume to replace it, or pass --out to write elsewhere"
        )
    kept = [
        {**e, "git_commit": e.get("git_commit", old.get("git_commit"))}
        for e in old.get("per_seed", [])
        if 0 <= e.get("seed", -1) < seeds
    ]
    log(f"resume: keeping seed(s) {[e['seed'] for e in kept]} from {path.name}")
    return kept
