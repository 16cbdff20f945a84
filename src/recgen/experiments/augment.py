"""``recgen augment profiles``: the profile job over a dataset (see ``recgen.data.augment.profiles``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recgen.data.augment.profiles import (
    ITEM_SCHEMA,
    PROMPT_VERSION,
    USER_SCHEMA,
    contradictions,
    item_jobs,
    user_contradictions,
    user_jobs,
    write_side_table,
)
from recgen.errors import ConfigError


def _earlier_runs(path: Path, dataset: str, kind: str) -> list[dict[str, Any]]:
    """The run summaries an earlier record of this side table kept (a resumed job's history); none when there is no
    readable record of the same dataset and kind (a run killed before writing one leaves none)."""
    import json

    try:
        old = json.loads(path.read_text())
        if old.get("dataset") != dataset or old.get("kind") != kind:
            return []
        return list(old.get("runs") or [old["this_run"]])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Tokens and generation seconds summed over the rows of a work file (each row records its own)."""
    out = {k: int(sum(r.get(k) or 0 for r in rows)) for k in ("prompt_tokens", "completion_tokens")}
    seconds = float(sum(r.get("seconds") or 0.0 for r in rows))
    out.update(seconds=seconds, attempts=int(sum(r.get("attempts") or 1 for r in rows)))
    out["completion_tokens_per_second"] = out["completion_tokens"] / seconds if seconds > 0 else None
    return out


def run_profiles(
    dataset: str,
    *,
    kinds: Sequence[str] = ("items", "users"),
    llm: Sequence[str] | str | None = None,
    llm_cache: str | None = None,
    workers: int = 1,
    batch: int = 1,
    limit: int = 0,
    max_tokens: int = 160,
    data: dict[str, Any] | None = None,
    out_dir: str | Path = "profiles",
    sets: dict[str, Any] | None = None,
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Generate the profiles of ``kinds`` for ``dataset`` (the first ``limit`` of each when > 0) into
    ``out_dir/<dataset>/``: ``<kind>.jsonl`` (the resumable work file), ``<kind>_profiles.parquet`` and
    ``<kind>_profiles.json`` (provenance and figures)."""
    from recgen.data.loaders import load_dataset
    from recgen.data.split import leave_one_out
    from recgen.experiments.results import git_commit, machine_info
    from recgen.io import atomic_write_json
    from recgen.llm import load_replicas
    from recgen.llm.batch import recover_jsonl, run_batch

    bad = [k for k in kinds if k not in ("items", "users")]
    if bad or not kinds:
        raise ConfigError(f"--kind takes items and/or users, got {list(kinds)}")
    ds = load_dataset(dataset, **(data or {}))
    specs = [llm] if isinstance(llm, str) or llm is None else list(llm)
    spec = specs[0] if len(specs) == 1 else "openai:" + ",".join(s.removeprefix("openai:") for s in specs)
    replicas = load_replicas(spec, workers, cache=llm_cache)  # llama.cpp: one copy per worker
    backend = replicas[0]
    folder = Path(out_dir) / ds.name
    results = {}
    for kind in kinds:
        if kind == "items":
            jobs, schema = item_jobs(ds), ITEM_SCHEMA
        else:
            split = leave_one_out(ds)  # user profiles see the training part only
            jobs, schema = user_jobs(split.train), USER_SCHEMA
        if limit > 0:
            jobs = jobs[:limit]
        work = folder / f"{kind}.jsonl"
        log(f"{ds.name}: {len(jobs)} {kind} profiles with {backend.info().get('model')} -> {work}")
        t0 = time.perf_counter()
        summary = run_batch(replicas, jobs, work, max_tokens=max_tokens, json_schema=schema, workers=workers,
                            batch=batch, progress=True)  # fmt: skip
        rows = recover_jsonl(work)
        wanted = {str(j["id"]) for j in jobs}
        rows = [r for r in rows if str(r["id"]) in wanted]
        table = write_side_table(rows, folder / f"{kind}_profiles.parquet", kind)
        ids = [str(r["id"]) for r in rows]
        summary = {**summary, "git_commit": git_commit()}  # a resumed table may span commits: each run says its own
        record = {
            "schema": "recgen-profiles/1",
            "dataset": ds.name,
            "dataset_fingerprint": ds.fingerprint(),
            "kind": kind,
            "prompt_version": PROMPT_VERSION,
            "json_schema": schema,
            "seed": 0,
            "llm": backend.info(),
            "profiles": len(rows),
            "ok": sum(r.get("status") == "ok" for r in rows),
            "missing": sum(r.get("status") == "missing" for r in rows),
            "duplicated": len(ids) - len(set(ids)),
            "lost": len(wanted - set(ids)),
            "this_run": summary,
            "runs": _earlier_runs(folder / f"{kind}_profiles.json", ds.name, kind) + [summary],
            "seconds_this_run": time.perf_counter() - t0,
            "mean_completion_tokens": float(np.mean([r.get("completion_tokens", 0) for r in rows])) if rows else 0.0,
            # the whole table's generation, every run that wrote it (a killed run's rows included)
            "totals": _totals(rows),
            "table": table.name,
            "machine": machine_info(measure_peak=False),
            "git_commit": git_commit(),
            "command": command,
        }
        if kind == "items":
            record["contradictions"] = contradictions(ds, rows)
        else:
            record["contradictions"] = user_contradictions(split.train, rows)
        atomic_write_json(folder / f"{kind}_profiles.json", record)
        results[kind] = record
        log(f"{kind}: {record['ok']} ok, {record['missing']} missing, {record['lost']} lost, {record['duplicated']} "
            f"duplicated; {summary['completion_tokens_per_second'] or 0:.1f} tokens/s this run")  # fmt: skip
    for r in replicas:
        r.close()
    return {"_path": str(folder), **results}
