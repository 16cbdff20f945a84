"""``recgen llm tallrec``: zero-shot and LoRA-tuned AUC of "will the user like this item?" at several training
sizes, beside the counting baselines on the same samples; one results JSON."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from recgen.config import make_config
from recgen.data.dataset import Dataset
from recgen.data.loaders import load_dataset
from recgen.errors import DataError
from recgen.eval.metrics import auc
from recgen.experiments.results import git_commit, provenance, settings_tag, write_json
from recgen.io import path_sha256
from recgen.llm.files import model_label
from recgen.models.llm.tallrec import Sample, TALLRec, TALLRecConfig, make_samples
from recgen.ops.logistic import fit_logistic


def baselines(train_pool: list[Sample], test: list[Sample], ds: Dataset, cfg: TALLRecConfig) -> dict[str, Any]:
    """Non-LLM AUCs on the same test samples: the like-rate of the history shown in the prompt (uses exactly
    the prompt's information, no training), the target item's like-rate among the train-pool users' ratings
    (uses more data than any few-shot sample set; a strong reference, not a few-shot method), and both together
    (a logistic regression on the two rates, fitted on the whole train pool: the ``stats`` prompt's information)."""
    y = np.array([s.label for s in test])
    train_users = {s.user for s in train_pool}
    mask = np.isin(ds.user_ids, list(train_users))
    liked = ds.ratings[mask] >= cfg.like_threshold
    prior = float(liked.mean()) if len(liked) else 0.5

    def rates(samples: list[Sample]) -> np.ndarray:  # (history like-rate, the target's like-rate, own rating out)
        return np.array(
            [[np.mean([ok for _, ok in s.history]) if s.history else 0.5,
              (s.item_liked + 5 * prior) / (s.item_rated + 5)] for s in samples]
        )  # fmt: skip

    test_rates = rates(test)  # the item rate from the counts make_samples carries (per item, not per title)
    out = {
        "history_like_rate_auc": float(auc(y, test_rates[:, 0])),
        "item_like_rate_auc": float(auc(y, test_rates[:, 1])),
        "item_like_rate_counted": "per item",  # results before b65065e counted per title (the table says so)
    }
    if train_pool and len({s.label for s in train_pool}) == 2:
        w = fit_logistic(rates(train_pool), np.array([s.label for s in train_pool]), l2=1e-3)
        out["user_item_like_rate_auc"] = float(auc(y, test_rates @ w[:2]))
    return out


def run_tallrec(
    dataset: str,
    n_trains: tuple[int, ...] = (16, 64, 256),
    *,
    llm: str = "smollm2",
    data_dir: str | None = None,
    sets: dict[str, Any] | None = None,
    out_dir: str = "benchmarks/results/llm",
    command: str | None = None,
    log=print,
) -> dict[str, Any]:
    """Zero-shot and tuned AUC at each training-set size; writes one results JSON."""
    from recgen.llm.hf import load_hf

    cfg = make_config(TALLRecConfig, sets or {})
    commit = git_commit()
    ds = load_dataset(dataset, data_dir=data_dir)
    pool, test = make_samples(ds, cfg)
    if max(n_trains) > len(pool):
        raise DataError(f"asked for {max(n_trains)} training samples but the train pool has {len(pool)}")
    y = np.array([s.label for s in test])
    log(f"{ds.name}: {len(pool)} train-pool samples, {len(test)} test samples ({y.mean():.2f} positive)")
    model, tok, path = load_hf(llm)
    t0 = time.perf_counter()
    zero = float(auc(y, TALLRec(model, tok, cfg).p_yes(test)))
    zero_s = time.perf_counter() - t0
    log(f"zero-shot AUC {zero:.4f} ({zero_s:.0f}s for {len(test)} samples)")
    runs = []
    for n in n_trains:
        model, tok, _ = load_hf(llm)  # a fresh base model for every size
        tr = TALLRec(model, tok, cfg)
        info = tr.tune(pool[:n])
        score = float(auc(y, tr.p_yes(test)))
        runs.append({"n_train": n, "test_auc": score, **info})
        log(f"n={n}: AUC {score:.4f} after {info['steps']} steps ({info['train_seconds']:.0f}s)")
    result = {
        "schema": "recgen-llm/1",
        "task": "tallrec",
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "protocol": {
            "name": "tallrec-user-split",
            "test_frac": cfg.test_frac,
            "description": f"{cfg.targets_per_user} random target(s) per user (>= min_history earlier items); "
            "users split train/test",
        },
        "backend": "hf",
        "model_file": model_label(path),
        "model_sha256": path_sha256(path),
        "prompt_template": cfg.prompt_version,
        "temperature": 0.0,
        "seed": cfg.seed,
        "config": dataclasses.asdict(cfg),
        "n_test": len(test),
        "test_positive_rate": float(y.mean()),
        "zero_shot_auc": zero,
        "runs": runs,
        "baselines": baselines(pool, test, ds, cfg),
        "published": {"model": "TALLRec (LLaMA-7B), ML (MovieLens-100K)", "auc": {16: 0.6724, 64: 0.6748, 256: 0.7198}},
        **provenance(commit, command),
    }
    # settings make a different run: their hash names it (a run without settings keeps the plain name)
    sizes = {} if tuple(n_trains) == (16, 64, 256) else {"train_samples": list(n_trains)}  # other sizes: another run
    tag = settings_tag({**(sets or {}), **sizes})
    path_out = Path(out_dir) / f"{ds.name}__tallrec__seed{cfg.seed}{tag}.json"
    write_json(result, path_out)
    result["_path"] = str(path_out)
    return result
