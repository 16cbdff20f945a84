"""``recgen bench``: fit on train, choose on validation, evaluate test, over seeds; write one JSON per run.

The results file holds everything needed to trust and redo the numbers: dataset (name, fingerprint, counts),
protocol, model, resolved config, seeds, valid and test metrics (mean, std and per seed), timings and
throughput, the machine (with its matmul peak measured in the same run), recgen version, git commit and the
command line.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recgen import __version__
from recgen.config import make_config, to_dict
from recgen.data.dataset import Dataset, atomic_write_file
from recgen.data.loaders import load_dataset
from recgen.data.split import make_split
from recgen.errors import ConfigError
from recgen.eval.evaluator import evaluate
from recgen.models.registry import check_resumable, get_model_class

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


def _mean_std(values: Sequence[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    keys = values[0].keys()
    mean = {k: float(np.mean([v[k] for v in values])) for k in keys}
    std = {k: float(np.std([v[k] for v in values], ddof=1)) if len(values) > 1 else 0.0 for k in keys}
    return mean, std


def headline(metrics: dict[str, float]) -> str:
    """The headline metrics as one log line fragment."""
    return ", ".join(f"{k}={metrics[k]:.4f}" for k in HEADLINE)


def restrict_eval_users(split, max_eval_users: int) -> None:
    """Keep ``max_eval_users`` seeded users in valid and test (0 = all), recorded in the split's protocol.

    The same users for every model and seed (seed 0), so costly models (LLMs) compare with their retrievers.
    """
    if max_eval_users < 0:
        raise ConfigError(f"--max-eval-users must be >= 0 (0 = all), got {max_eval_users}")
    if not max_eval_users:
        return
    rng = np.random.default_rng(0)
    for name in ("valid", "test"):
        es = getattr(split, name)
        if len(es) > max_eval_users:
            setattr(split, name, es.select(np.sort(rng.choice(len(es), max_eval_users, replace=False))))
    split.protocol = {**split.protocol, "eval_users": max_eval_users, "eval_users_seed": 0}


def run_bench(
    dataset: str,
    model: str,
    *,
    format: str | None = None,
    data_dir: str | None = None,
    sets: dict[str, Any] | None = None,
    seeds: int = 1,
    protocol: str = "leave-one-out",
    split_args: dict[str, Any] | None = None,
    ks: Sequence[int] = (5, 10, 20),
    out_dir: str | Path = DEFAULT_RESULTS_DIR,
    exclude_seen: bool = True,
    sampled_negatives: int = 0,
    eval_batch_size: int = 512,
    max_eval_users: int = 0,
    grid: dict[str, list[str]] | None = None,
    command: str | None = None,
    resume: bool = False,
    decode_variants: Sequence[dict[str, Any]] = (),
    only_seeds: Sequence[int] = (),
    run_dir: str | Path | None = None,
    log=print,
) -> dict[str, Any]:
    """Benchmark one model on one dataset; returns the result dict (also written to ``out_dir``).

    ``decode_variants``: config changes of fields the model reads only when recommending (its ``decode_fields``,
    e.g. TIGER's ``constrained`` and ``beam``); each seed's fitted model is also evaluated on test with each
    change, recorded under ``per_seed[i]["test_variants"]`` (the fitted weights are the same, not refitted).

    The results file is rewritten (atomically) after every seed, so an interrupted multi-seed run leaves the seeds
    it finished, marked ``complete: false`` with ``seeds_planned``. ``resume=True`` keeps the per-seed entries of an
    existing file of the same name (same dataset fingerprint, protocol and config) and runs only the missing seeds;
    each entry records the git commit that ran it.

    ``run_dir`` (neural models): each seed's trainer keeps ``last.pt``/``best.pt`` in
    ``run_dir/<results file stem>/seed<K>``, after every epoch; with ``resume=True`` a seed interrupted mid-training
    continues from its ``last.pt`` (same config required) instead of starting over, and its entry records
    ``resumed_from_epoch``; its ``fit_seconds`` add the interrupted run's time.

    ``only_seeds``: run just these of the ``seeds`` planned (the file stays ``complete: false`` until the others
    are there), so the seeds of one run can go to parallel processes with separate ``out_dir``s and be joined by
    ``merge_results``.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    bad = [k for k in only_seeds if not 0 <= k < seeds]
    if bad:
        raise ConfigError(f"--only-seed must name seeds in 0..{seeds - 1} (--seeds {seeds}), got {bad}")
    commit = git_commit()  # at start: the code that runs is the code of this commit
    klass = get_model_class(model)
    base_cfg = make_config(klass.Config, sets or {})  # validates fields before any data is loaded
    if run_dir is not None:
        check_resumable(model, "--run-dir")
    t0 = time.perf_counter()
    ds = load_dataset(dataset, format=format, data_dir=data_dir)
    split = make_split(ds, protocol, **(split_args or {}))
    restrict_eval_users(split, max_eval_users)
    load_seconds = time.perf_counter() - t0
    log(f"{ds.name}: {ds.n_users} users, {ds.n_items} items, {ds.n_interactions} interactions")
    log(f"protocol: {split.describe()}")
    machine = machine_info()
    device = getattr(base_cfg, "device", "cpu")
    if device != "cpu":  # the device the model trains and decodes on (the matmul peak stays the CPU's)
        from recgen.models.base import resolve_device

        machine["device"] = str(resolve_device(device))
    grid_log = None
    if grid:
        base_cfg, grid_log = _grid_search(klass, base_cfg, grid, split, log)
    stub = {"dataset": ds.name, "model": model, "config": to_dict(base_cfg), "protocol": split.protocol}
    path = Path(out_dir) / result_filename(stub)
    per_seed = []
    if resume:  # configs compared as the results files hold them (JSON)
        ours = json.loads(json.dumps(stub["config"], default=str))
        if not path.exists():
            path = _earlier_run(path, ours, _with_defaults(model))
        per_seed = _resumable_seeds(path, ds.fingerprint(), ours, stub["protocol"]["name"], seeds, log)
    done = {e["seed"] for e in per_seed}

    def assemble() -> dict[str, Any]:
        return _assemble_result(
            ds=ds,
            source=dataset,
            split=split,
            exclude_seen=exclude_seen,
            model=model,
            config=base_cfg,
            seeds_planned=seeds,
            per_seed=per_seed,
            load_seconds=load_seconds,
            machine=machine,
            grid_log=grid_log,
            commit=commit,
            command=command,
        )

    variants = _decode_variants(klass, base_cfg, decode_variants)
    for seed in range(seeds):
        if seed in done or (only_seeds and seed not in only_seeds):
            continue
        cfg = (
            dataclasses.replace(base_cfg, seed=seed)
            if "seed" in {f.name for f in dataclasses.fields(base_cfg)}
            else base_cfg
        )
        m = klass(cfg)
        if run_dir is not None:
            seed_dir = Path(run_dir) / result_filename(stub).removesuffix(".json") / f"seed{seed}"
            resuming = resume and (seed_dir / "last.pt").exists()
            if resuming:
                log(f"seed {seed}: continuing the interrupted training in {seed_dir}")
            m.configure_run(seed_dir, resume=resuming)
        t = time.perf_counter()
        m.fit(split.train, valid=split.valid)
        fit_s = time.perf_counter() - t + getattr(m, "resumed_wall_seconds_", 0.0)
        if getattr(m, "selects_on_valid", True):
            rv = evaluate(m, split.valid, ks=ks, exclude_seen=exclude_seen, batch_size=eval_batch_size, progress=True)
            valid_metrics = rv.metrics
        else:  # zero-shot models choose nothing on validation; skip its (costly) evaluation
            valid_metrics = {}
        if hasattr(m, "reset_stats"):
            m.reset_stats()  # model-side counters (e.g. out-of-catalogue lines) cover the test users only
        rt = evaluate(
            m,
            split.test,
            ks=ks,
            exclude_seen=exclude_seen,
            batch_size=eval_batch_size,
            sampled_negatives=sampled_negatives,
            seed=seed,
            progress=True,
        )
        entry = {
            "seed": seed,
            "valid": valid_metrics,
            "test": rt.metrics,
            "fit_seconds": fit_s,
            "eval_seconds": rt.seconds,
            "eval_users_per_second": rt.users_per_second,
            "best_epoch": getattr(m, "best_epoch_", None),
            "stop_reason": getattr(m, "stop_reason_", ""),
            "git_commit": commit,
        }
        if getattr(m, "resumed_from_epoch_", 0):
            entry["resumed_from_epoch"] = m.resumed_from_epoch_
        if getattr(m, "train_log_", None):
            entry["train_log"] = m.train_log_
        if getattr(m, "train_speed_", None):
            entry["train_speed"] = dict(m.train_speed_)
            cpu_run = machine.get("device") == "cpu"  # MFU against the CPU's measured peak means nothing on a GPU
            if cpu_run and "achieved_gflops" in entry["train_speed"] and machine.get("matmul_peak_gflops"):
                entry["train_speed"]["mfu"] = entry["train_speed"]["achieved_gflops"] / machine["matmul_peak_gflops"]
        if hasattr(m, "run_info"):
            entry["run_info"] = m.run_info()
        if hasattr(m, "non_embedding_parameters"):
            entry["non_embedding_parameters"] = m.non_embedding_parameters()
        if variants:
            entry["test_variants"] = {}
        for label, change in variants:
            fitted_cfg, m.config = m.config, dataclasses.replace(m.config, **change)
            if hasattr(m, "reset_stats"):
                m.reset_stats()
            rx = evaluate(m, split.test, ks=ks, exclude_seen=exclude_seen, batch_size=eval_batch_size, progress=True)
            entry["test_variants"][label] = {
                "test": rx.metrics,
                "eval_users_per_second": rx.users_per_second,
                **({"run_info": m.run_info()} if hasattr(m, "run_info") else {}),
            }
            m.config = fitted_cfg
            log(f"seed {seed}, {label}: test " + headline(rx.metrics) + f", eval {rx.users_per_second:.0f} users/s")
        per_seed.append(entry)
        per_seed.sort(key=lambda e: e["seed"])
        log(
            f"seed {seed}: fit {fit_s:.1f}s, test " + headline(rt.metrics) + f", eval {rt.users_per_second:.0f} users/s"
        )
        write_json(assemble(), path)  # after every seed: an interrupted run keeps what it finished
    result = assemble()
    result["_path"] = str(write_json(result, path))
    return result


def _earlier_run(path: Path, ours: dict[str, Any], full) -> Path:
    """A results file of the same run made before the model's config gained fields (so its name hashes fewer
    fields): same dataset, model and protocol, equal on every field it has, and ours at the default on the rest
    (``full``: ``_with_defaults``). ``path`` itself when there is none."""
    prefix = path.name.rsplit("__", 1)[0] + "__"
    for other in sorted(path.parent.glob(prefix + "*.json")):
        try:
            cfg = json.loads(other.read_text()).get("config", {})
        except (OSError, json.JSONDecodeError):
            continue
        if full(cfg) == ours:
            return other
    return path


def _resumable_seeds(
    path: Path, fingerprint: str, config: dict[str, Any], protocol: str, seeds: int, log
) -> list[dict[str, Any]]:
    """Per-seed entries of an earlier results file that this run may keep (``--resume``). ``config`` is ours as
    JSON; only the fields the file has are compared (fields added since are checked by ``_earlier_run``)."""
    if not path.exists():
        log(f"resume: no earlier results file {path.name}; running all the seeds asked for")
        return []
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"--resume: cannot read {path}: {e}; move it away or run without --resume") from e
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


def _assemble_result(
    *,
    ds: Dataset,
    source: str,
    split: Any,
    exclude_seen: bool,
    model: str,
    config: Any,
    seeds_planned: int,
    per_seed: list[dict[str, Any]],
    load_seconds: float,
    machine: dict[str, Any],
    grid_log: dict[str, Any] | None,
    commit: str | None,
    command: str | None,
) -> dict[str, Any]:
    """The results file's content from the seeds run so far (``per_seed``; ``complete`` once all are there)."""
    result = {
        "schema": "recgen-bench/1",
        "dataset": ds.name,
        "dataset_source": source,
        "dataset_fingerprint": ds.fingerprint(),
        "dataset_stats": {"users": ds.n_users, "items": ds.n_items, "interactions": ds.n_interactions},
        "protocol": {
            **split.protocol,
            "description": split.describe(),
            "exclude_seen": exclude_seen,
            "ranking": "full catalogue",
            "ties": "broken by lower dense item id (first-seen order)",
        },
        "model": model,
        "config": to_dict(config),
        **_aggregate(per_seed, seeds_planned, machine.get("matmul_peak_gflops"), load_seconds),
        **({"grid": grid_log} if grid_log else {}),
        "recgen_version": __version__,
        "git_commit": commit,
        "machine": machine,
        "command": command or " ".join(["recgen", *sys.argv[1:]]),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    return result


def _aggregate(
    per_seed: list[dict[str, Any]], seeds_planned: int, peak: float | None, load_seconds: float
) -> dict[str, Any]:
    """The fields of a results file computed from its per-seed entries: means and spreads, timings, speeds."""
    valid_mean, valid_std = _mean_std([e["valid"] for e in per_seed])
    test_mean, test_std = _mean_std([e["test"] for e in per_seed])
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
        "best_epochs": [e["best_epoch"] for e in per_seed],
        "git_commits": sorted({e["git_commit"] for e in per_seed if e.get("git_commit")}),
    }


MERGE_KEYS = ("schema", "dataset", "dataset_fingerprint", "model", "config", "protocol")
DEVICE_FIELD = "device"  # the config field that says where a run executes (cpu, cuda), not what it computes


def merge_results(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    command: str | None = None,
    mixed_devices: bool = False,
) -> dict[str, Any]:
    """Join results files of the same run (same data fingerprint, model, config and protocol) whose seeds were run
    apart (``bench --only-seed`` in parallel processes, or on different machines) into one file under ``out_dir``,
    with the means and spreads recomputed over the union of their seeds. A seed present in two files must hold the
    same test metrics (else it is an error naming both). Each source is listed under ``merged_from`` (a source that is
    itself a merged file by the sources it lists, so a file merged again keeps the command of every seed).

    ``mixed_devices``: also join files whose configs differ only in ``device`` (seeds trained on a GPU, with bf16
    autocast, and on the CPU in fp32: the same recipe, not the same arithmetic, hence opt-in). Each seed then
    records its ``device``, the merged config's ``device`` names them all (``cuda+cpu``), and speeds and fit times,
    which mean nothing averaged across devices, are given per device only (``throughput_by_device``)."""
    if not paths:
        raise ConfigError("merge-results needs at least one results file")
    runs = []
    for p in paths:
        try:
            runs.append((Path(p), json.loads(Path(p).read_text())))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read results file {p}: {e}") from e
    first_path, first = runs[0]
    full = _with_defaults(first.get("model"))

    def recipe(cfg: dict[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in full(cfg).items() if k != DEVICE_FIELD}

    for path, r in runs[1:]:
        diff = [
            k
            for k in MERGE_KEYS
            if k != "config" and json.dumps(r.get(k), sort_keys=True) != json.dumps(first.get(k), sort_keys=True)
        ]
        hint = "merge only the files of one dataset, model, config and protocol"
        if not diff and recipe(r.get("config")) != recipe(first.get("config")):
            diff.append("config")
        elif not diff and not mixed_devices and full(r.get("config")) != full(first.get("config")):
            a, b = full(r.get("config")).get(DEVICE_FIELD), full(first.get("config")).get(DEVICE_FIELD)
            diff.append(f"config: device {a!r} there, {b!r} here")
            hint = "pass --mixed-devices to join seeds of one recipe trained on different devices"
        if diff:
            raise ConfigError(
                f"{path} and {first_path} are not the same run (they differ in {', '.join(diff)}); {hint}"
            )
    by_seed: dict[int, tuple[Path, dict[str, Any]]] = {}
    for path, r in runs:
        for e in r.get("per_seed", []):
            if e["seed"] in by_seed:
                other_path, other = by_seed[e["seed"]]
                if other["test"] != e["test"]:
                    raise ConfigError(
                        f"seed {e['seed']} is in {other_path} and in {path} with different test metrics; "
                        "keep one of the two files out of the merge"
                    )
                continue
            by_seed[e["seed"]] = (path, e)
    per_seed = [by_seed[k][1] for k in sorted(by_seed)]
    source_cfg = {path: r.get("config") for path, r in runs}

    def device_of(e: dict[str, Any]) -> Any:  # a seed from an earlier mixed merge names its own device
        return e.get(DEVICE_FIELD) or full(source_cfg[by_seed[e["seed"]][0]]).get(DEVICE_FIELD)

    mixed = len({device_of(e) for e in per_seed}) > 1
    if mixed:  # each seed says where it ran
        per_seed = [{**e, DEVICE_FIELD: device_of(e)} for e in per_seed]
    machines = [m for _, r in runs for m in r.get("machines") or [r["machine"]]]
    result = {k: v for k, v in first.items() if k not in ("merged_from", "machines")}
    # the config with the most fields (the newest code's), which names the merged file
    result["config"] = max((r.get("config") or {} for _, r in runs), key=len)
    result.update(
        _aggregate(
            per_seed,
            max(r.get("seeds_planned", len(r.get("per_seed", []))) for _, r in runs),
            first.get("throughput", {}).get("matmul_peak_gflops"),
            first.get("timings", {}).get("load_split_seconds", 0.0),
        )
    )
    if mixed:
        order = list(dict.fromkeys(e[DEVICE_FIELD] for e in per_seed))
        result["config"] = {**result["config"], DEVICE_FIELD: "+".join(order)}
        result["throughput_by_device"] = {
            d: _speeds([e for e in per_seed if e[DEVICE_FIELD] == d], first.get("throughput", {})) for d in order
        }
        # averages across devices mean nothing: the file keeps only the per-device ones
        result["timings"] = {k: v for k, v in result["timings"].items() if k == "load_split_seconds"}
        result["throughput"] = {"matmul_peak_gflops": result["throughput"].get("matmul_peak_gflops")}
    distinct = [m for i, m in enumerate(machines) if m not in machines[:i]]
    if len(distinct) > 1:
        result["machines"] = distinct
    result["merged_from"] = []
    for path, r in runs:
        missing = set(result["config"]) - set(r.get("config") or {})  # written before these fields existed
        own = {"file": path.name, "seeds": [e["seed"] for e in r.get("per_seed", [])], "command": r.get("command")}
        # a source that is itself a merge contributes its sources, so every seed keeps the command that ran it
        for source in r.get("merged_from") or [own]:
            if at_default := sorted(missing | set(source.get("config_fields_at_default", []))):
                source = {**source, "config_fields_at_default": at_default}
            if source not in result["merged_from"]:  # the same file given twice, or inside two merges
                result["merged_from"].append(source)
    result["command"] = command or " ".join(["recgen", *sys.argv[1:]])
    result["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    result["_path"] = str(write_result(result, out_dir))
    return result


def _speeds(per_seed: list[dict[str, Any]], throughput: dict[str, Any]) -> dict[str, Any]:
    """Mean fit time, evaluation and training speeds of some seeds (one device's, in a mixed-device merge)."""
    agg = _aggregate(per_seed, len(per_seed), throughput.get("matmul_peak_gflops"), 0.0)
    return {
        "seeds": agg["seeds"],
        "fit_seconds_mean": agg["timings"]["fit_seconds_mean"],
        **{k: v for k, v in agg["throughput"].items() if k != "matmul_peak_gflops"},
    }


def _with_defaults(model: str | None):
    """config (as a results file holds it, JSON) -> the same config with every field the model's Config has gained
    since filled in at its default: a file written before a field existed ran with the behaviour that default keeps
    (the convention every new config field follows), so the two are the same run. Used by ``bench --resume`` and
    ``merge-results``."""
    try:
        defaults = json.loads(json.dumps(to_dict(get_model_class(model).Config()), default=str))
    except ConfigError:  # a model this version does not know: compare the configs as written
        defaults = {}
    return lambda cfg: {**defaults, **(cfg or {})}


def _decode_variants(klass, base_cfg, changes: Sequence[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(label, typed field changes) per decode variant, checked before anything is fitted: only the model's decode-time
    fields may change."""
    allowed = tuple(getattr(klass, "decode_fields", ()))
    out = []
    for change in changes:
        bad = sorted(set(change) - set(allowed))
        if bad:
            raise ConfigError(
                f"--decode-variant can only change fields {klass.__name__} reads when recommending "
                f"({', '.join(allowed) or 'it has none'}), not {', '.join(bad)}; use --set to train another model"
            )
        cfg = make_config(klass.Config, change, base=base_cfg)  # coerces and validates the values
        out.append((",".join(f"{k}={v}" for k, v in change.items()), {k: getattr(cfg, k) for k in change}))
    return out


def _grid_search(klass, base_cfg, grid: dict[str, list[str]], split, log) -> tuple[Any, dict[str, Any]]:
    """Fit every combination of the grid (seed of the base config) on train, score validation NDCG@10, and return
    the config with the best one (ties: the first in grid order) and the log of every point."""
    import itertools

    keys = list(grid)
    points = []
    best, best_cfg = float("-inf"), base_cfg
    for values in itertools.product(*(grid[k] for k in keys)):
        cfg = make_config(klass.Config, dict(zip(keys, values, strict=True)), base=base_cfg)
        m = klass(cfg).fit(split.train, valid=split.valid)
        v = evaluate(m, split.valid, ks=(10,)).metrics["ndcg@10"]
        points.append({**{k: getattr(cfg, k) for k in keys}, "valid_ndcg@10": v})
        log(f"grid {dict(zip(keys, values, strict=True))}: valid ndcg@10 {v:.4f}")
        if v > best:
            best, best_cfg = v, cfg
    chosen = {k: getattr(best_cfg, k) for k in keys}
    log(f"grid choice (validation NDCG@10 {best:.4f}): {chosen}")
    return best_cfg, {"metric": "valid ndcg@10", "points": points, "chosen": chosen}


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``key=v1,v2,...`` strings (``--grid``) -> {key: [values]}."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not vals:
            raise ConfigError(f"--grid takes key=v1,v2,..., got {item!r}")
        out[key.strip()] = vals
    return out


def result_filename(result: dict[str, Any]) -> str:
    cfg_hash = hashlib.sha256(json.dumps(result["config"], sort_keys=True).encode()).hexdigest()[:8]
    p = result["protocol"]
    proto = p.get("name", "protocol")
    if "valid_frac" in p:  # e.g. temporal-v10-t20: the split's fractions are part of what was run
        proto += f"-v{round(100 * p['valid_frac'])}-t{round(100 * p['test_frac'])}"
    if p.get("eval_users"):  # a user subsample is a different measurement
        proto += f"-u{p['eval_users']}"
    return f"{result['dataset']}__{result['model']}__{proto}__{cfg_hash}.json"


def write_result(result: dict[str, Any], out_dir: str | Path) -> Path:
    """Write a bench results JSON atomically under its canonical file name."""
    return write_json(result, Path(out_dir) / result_filename(result))


def write_json(result: dict[str, Any], path: str | Path) -> Path:
    """Write any results JSON atomically (temp file + rename), so a crash never leaves half a file."""
    text = json.dumps(result, indent=2, default=str) + "\n"
    return atomic_write_file(Path(path), lambda tmp: Path(tmp).write_text(text))


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
    """Every results JSON in ``folder`` (any recgen schema), sorted by file name, with ``_path`` set; files that
    are not valid JSON or carry no schema are skipped. The one reader behind every results loader."""
    out = []
    for p in sorted(Path(folder).glob("*.json")):
        try:
            r = json.loads(p.read_text())
        except json.JSONDecodeError:
            continue
        if isinstance(r, dict) and isinstance(r.get("schema"), str):
            r["_path"] = str(p)
            out.append(r)
    return out


def is_bench_result(r: dict[str, Any]) -> bool:
    return r["schema"].startswith("recgen-bench")


def load_results(results_dir: str | Path = DEFAULT_RESULTS_DIR) -> list[dict[str, Any]]:
    return [r for r in read_json_results(results_dir) if is_bench_result(r)]
