"""``recgen llm collm``: CoLLM (collaborative embeddings in the LLM's token space) against the text-only LLM
with the same LoRA budget, its own collaborative model (MF), ranking models and the counting baselines, all on
the same seeded labelled test pairs of ``recgen.data.labels``' time split; AUC, UAUC and calibrated log-loss."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recgen.config import make_config
from recgen.data.labels import Pairs, labelled_split
from recgen.data.loaders import load_dataset
from recgen.eval.ctr import counting_baselines, evaluate_scores, pair_scores
from recgen.experiments.results import git_commit, provenance, write_json
from recgen.io import path_sha256
from recgen.llm.files import model_label
from recgen.models.llm.collm import PROMPT_VERSION, CoLLM, CoLLMConfig, make_samples
from recgen.models.registry import create_model


def _subset(p: Pairs, n: int, seed: int) -> Pairs:
    idx = np.sort(np.random.default_rng(seed).choice(len(p), min(n, len(p)), replace=False))
    return Pairs(p.users[idx], p.items[idx], p.labels[idx], p.timestamps[idx])


def run_collm_study(
    dataset: str,
    *,
    llm: str = "smollm2",
    n_test: int = 400,
    n_valid: int = 200,
    models: tuple[str, ...] = ("ease",),
    save: str | None = None,
    sets: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    out_dir: str = "benchmarks/results/llm",
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    from recgen.llm.hf import load_hf

    cfg = make_config(CoLLMConfig, sets or {})
    commit = git_commit()
    ds = load_dataset(dataset, **(data or {}))
    split = labelled_split(ds)
    # the LLM rows are costly: every row is measured on the same seeded subsets of the validation and test pairs
    split.valid, split.test = _subset(split.valid, n_valid, cfg.seed), _subset(split.test, n_test, cfg.seed + 1)
    log(f"{ds.name}: {split.describe()}")
    rows = [{**r, "kind": "counting"} for r in counting_baselines(split, ds.users.size, ds.items.size)]
    for name in models:
        m = create_model(name).fit(split.fit.train, valid=split.fit.valid)
        rows.append({"model": name, "kind": "ranking model",
                     **evaluate_scores(split, pair_scores(m, split.valid), pair_scores(m, split.test))})  # fmt: skip
    model, tok, path = load_hf(llm)
    t0 = time.perf_counter()
    collm = CoLLM(model, tok, cfg).fit(ds, split, log=log)
    fit_s = time.perf_counter() - t0
    rows.append({"model": "MF (CoLLM's collaborative model)", "kind": "collaborative",
                 **evaluate_scores(split, collm.mf.scores(split.valid), collm.mf.scores(split.test))})  # fmt: skip
    valid = make_samples(ds, split, split.valid, cfg.history_len, within_train=False)
    test = make_samples(ds, split, split.test, cfg.history_len, within_train=False)
    for label, slots in (("LLM text only (LoRA, same step 1)", False), ("CoLLM", True)):
        t0 = time.perf_counter()
        row = evaluate_scores(split, collm.p_yes(valid, slots=slots), collm.p_yes(test, slots=slots))
        rows.append({"model": label, "kind": "LLM", **row, "score_seconds": time.perf_counter() - t0})
    for r in rows:
        log(f"{r['model']}: AUC {r['auc']:.4f}, UAUC {r['uauc']:.4f} ({r['uauc_users']} users), "
            f"log-loss {r['log_loss']:.4f}")  # fmt: skip
    if save:
        collm.save(save)
    result = {
        "schema": "recgen-ctr/1",
        "task": "collm",
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "protocol": {
            **split.protocol,
            "description": split.describe(),
            "test_pairs": len(split.test),
            "valid_pairs": len(split.valid),
            "subset_seed": cfg.seed,
        },  # fmt: skip
        "backend": "hf",
        "model_file": model_label(path),
        "model_sha256": path_sha256(path),
        "prompt_template": PROMPT_VERSION,
        "config": dataclasses.asdict(cfg),
        "training": {**collm.info, "fit_seconds": fit_s},
        "rows": rows,
        **provenance(commit, command),
    }
    out = Path(out_dir) / f"{ds.name}__collm__seed{cfg.seed}.json"
    result["_path"] = str(write_json(result, out))
    return result
