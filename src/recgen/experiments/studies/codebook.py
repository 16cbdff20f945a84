"""``recgen codebook``: fit item tokenizers (semantic IDs) on the leave-one-out training split and record codebook
usage, collisions and reconstruction error, one results JSON per dataset and item-vector kind."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recgen.config import check, make_config
from recgen.data.loaders import load_dataset
from recgen.data.split import make_split
from recgen.experiments.results import git_commit, provenance, read_result, write_json
from recgen.models.semantic.item_codes import TOKENIZER_FIELDS, TOKENIZERS, fit_item_tokenizer, level_sizes
from recgen.models.semantic.tiger import TIGERConfig


def run_codebook_study(
    dataset: str,
    tokenizers: Sequence[str] = ("rqvae", "rqkmeans", "collab", "id"),
    *,
    data_dir: str | None = None,
    sets: dict[str, Any] | None = None,
    out_dir: str = "benchmarks/results/codebooks",
    command: str | None = None,
    log=print,
) -> dict[str, Any]:
    """Fit each item tokenizer on the leave-one-out training split (what TIGER sees) and record its statistics:
    codebook usage (perplexity per level), collision rate before the extra level, reconstruction error."""
    base = make_config(TIGERConfig, sets or {})
    for t in tokenizers:
        check(t in TOKENIZERS, f"tokenizer must be one of {list(TOKENIZERS)}, got {t!r}")
    commit = git_commit()
    ds = load_dataset(dataset, data_dir=data_dir)
    train = make_split(ds, "leave-one-out").train
    rows = []
    for t in tokenizers:
        cfg = dataclasses.replace(base, tokenizer=t)
        codes, stats = fit_item_tokenizer(train, cfg)
        stats.pop("log", None)
        levels = level_sizes(codes)
        row = {"tokenizer": t, "embeddings": cfg.embeddings, "level_sizes": levels, **stats}
        rows.append({**row, "git_commit": commit})
        log(
            f"{t}: levels {levels}, perplexity {[round(p, 1) for p in stats['perplexity']]}, "
            f"collisions {stats['collision_rate']:.4f}, reconstruction {stats['reconstruction_mse']:.4f}"
        )
    path = Path(out_dir) / f"{ds.name}__codebooks__{base.embeddings}.json"
    config = json.loads(json.dumps(dataclasses.asdict(base)))
    rows = _merge_codebook_rows(path, ds.fingerprint(), config, rows, log)
    result = {
        "schema": "recgen-codebooks/1",
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "n_items": ds.n_items,
        "config": config,
        "tokenizers": rows,
        **provenance(commit, command, measure_peak=False),
    }
    for r in rows:  # each row names the command that made it (rows kept from an earlier study keep theirs)
        r.setdefault("command", result["command"])
    write_json(result, path)
    result["_path"] = str(path)
    return result


def _merge_codebook_rows(
    path: Path, fingerprint: str, config: dict[str, Any], rows: list[dict[str, Any]], log
) -> list[dict[str, Any]]:
    """Keep the rows of tokenizers that an earlier study file of the same data and tokenizer fields holds and this
    run did not fit (so ``--tokenizers collab`` adds a row instead of replacing the file); each kept row keeps the
    commit and command that made it. A file of other data or other tokenizer fields is replaced, and the log says
    so."""
    if not path.is_file():
        return rows
    old = read_result(path)  # an unreadable earlier study stops here rather than lose its rows silently

    def rest(cfg: dict[str, Any]) -> dict[str, Any]:  # what the tokenizers read, but their name
        return {k: cfg.get(k) for k in TOKENIZER_FIELDS if k != "tokenizer"}

    if old.get("dataset_fingerprint") != fingerprint or rest(old.get("config", {})) != rest(config):
        log(f"{path.name}: an earlier study of other data or another config is replaced")
        return rows
    ran = {r["tokenizer"] for r in rows}
    kept = [
        {**r, "git_commit": r.get("git_commit", old.get("git_commit")), "command": r.get("command", old.get("command"))}
        for r in old.get("tokenizers", [])
    ]
    kept = [r for r in kept if r["tokenizer"] not in ran]
    if kept:
        log(f"{path.name}: keeping the earlier rows of {[r['tokenizer'] for r in kept]}")
    order = {t: i for i, t in enumerate(TOKENIZERS)}
    return sorted(kept + rows, key=lambda r: order.get(r["tokenizer"], len(order)))
