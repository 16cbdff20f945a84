"""``recgen ctr``: "will this user like this item?" on explicit feedback (``recgen.data.labels``): every
registered model named, fitted by the harness on the training interactions, scores the same labelled test pairs
(``recgen.eval.ctr``), beside the counting baselines (user, item and combined like-rates); AUC, UAUC, GAUC and
calibrated log-loss. The click-through task of TALLRec and CoLLM, for models that rank as well as for models that
predict a label."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recgen.data.labels import labelled_split
from recgen.data.loaders import load_dataset
from recgen.errors import ConfigError
from recgen.eval.ctr import counting_baselines, evaluate_scores, pair_scores
from recgen.experiments.results import git_commit, provenance, write_json
from recgen.models.registry import available_models, create_model


def run_ctr_study(
    dataset: str,
    *,
    models: Sequence[str] = ("pop", "itemknn", "ease", "sasrec"),
    like_threshold: float = 4.0,
    fit_on: str = "liked",
    valid_frac: float = 0.1,
    test_frac: float = 0.1,
    sets: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    out_dir: str = "benchmarks/results/ctr",
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Counting baselines and each model on the same labelled pairs; writes ``<dataset>__ctr__<models>.json``."""
    unknown = [m for m in models if m not in available_models()]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}; pick from {', '.join(available_models())}")
    commit = git_commit()
    ds = load_dataset(dataset, **(data or {}))
    split = labelled_split(ds, like_threshold=like_threshold, valid_frac=valid_frac, test_frac=test_frac,
                           fit_on=fit_on)  # fmt: skip
    log(f"{ds.name}: {split.describe()}")
    rows = []
    for row in counting_baselines(split, ds.users.size, ds.items.size):
        rows.append({**row, "kind": "counting"})
        log(f"{row['model']}: AUC {row['auc']:.4f}, UAUC {row['uauc']:.4f}, log-loss {row['log_loss']:.4f}")
    for name in models:
        per = {k.split(".", 1)[1]: v for k, v in (sets or {}).items() if k.startswith(f"{name}.")}
        t0 = time.perf_counter()
        model = create_model(name, **per).fit(split.fit.train, valid=split.fit.valid)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        row = evaluate_scores(split, pair_scores(model, split.valid), pair_scores(model, split.test))
        rows.append({"model": name, "kind": "ranking model", **row, "config": per, "fit_seconds": fit_s,
                     "score_seconds": time.perf_counter() - t0})  # fmt: skip
        log(f"{name}: AUC {row['auc']:.4f}, UAUC {row['uauc']:.4f}, log-loss {row['log_loss']:.4f} "
            f"(fit {fit_s:.0f}s)")  # fmt: skip
    result = {
        "schema": "recgen-ctr/1",
        "task": "ctr",
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "protocol": {
            **split.protocol,
            "description": split.describe(),
            "test_positive_rate": split.test.positive_rate(),
        },  # fmt: skip
        "rows": rows,
        **provenance(commit, command),
    }
    tag = ("-".join(models) or "counting") + ("" if fit_on == "liked" else f"__fit-{fit_on}")
    path = Path(out_dir) / f"{ds.name}__ctr__{tag}.json"
    result["_path"] = str(write_json(result, path))
    return result


def is_ctr_result(r: dict[str, Any]) -> bool:
    return r.get("schema") == "recgen-ctr/1"


def ctr_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | model | kind | fitted on | test pairs | test AUC | UAUC (users) | GAUC "
        "| log-loss (Platt on valid) | valid AUC |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for row in r["rows"]:
            lines.append(
                f"| {r['dataset']} | {row['model']} | {row['kind']} | "
                f"{r['protocol']['fit_on'] + ' training interactions' if row['kind'] == 'ranking model' else 'labels'} "
                f"| {row['pairs']} | {row['auc']:.4f} | {row['uauc']:.4f} "
                f"({row['uauc_users']}) | {row['gauc']:.4f} | {row['log_loss']:.4f} | {row['valid_auc']:.4f} |"
            )
    return "\n".join(lines)
