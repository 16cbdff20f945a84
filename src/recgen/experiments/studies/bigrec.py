"""``recgen llm bigrec``: one BIGRec SFT fit evaluated with both groundings, then DPO on top and evaluated again,
on the same seeded test users as the retrievers fitted beside it; one results JSON."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recgen.config import check, make_config
from recgen.data.loaders import load_dataset
from recgen.data.split import make_split
from recgen.eval.evaluator import evaluate
from recgen.experiments.bench import restrict_eval_users
from recgen.experiments.results import git_commit, headline, provenance, write_json
from recgen.models.llm.bigrec import PROMPT_VERSION, BIGRec, BIGRecConfig
from recgen.models.registry import create_model


def run_bigrec_study(
    dataset: str,
    *,
    max_eval_users: int = 100,
    dpo_samples: int = 128,
    baselines: Sequence[str] = ("pop", "ease"),
    data_dir: str | None = None,
    sets: dict[str, Any] | None = None,
    out_dir: str = "benchmarks/results/llm",
    command: str | None = None,
    log=print,
) -> dict[str, Any]:
    """One SFT fit, evaluated with both groundings, then DPO on top and evaluated again, on the same seeded test
    users as the retrievers fitted beside it (leave-one-out, full ranking). Writes one results JSON.

    Fitting once and evaluating every stage on it isolates what each step changes (grounding, DPO) from the
    run-to-run variance of SFT, which a separate ``recgen bench`` per variant would mix in.
    """
    check(dpo_samples >= 0, f"--dpo-samples must be >= 0, got {dpo_samples}")
    cfg = make_config(BIGRecConfig, {**(sets or {}), "dpo_samples": 0})
    commit = git_commit()
    ds = load_dataset(dataset, data_dir=data_dir)
    split = make_split(ds, "leave-one-out")
    restrict_eval_users(split, max_eval_users)
    test = split.test
    log(f"{ds.name}: {ds.n_users} users, {ds.n_items} items; {len(test)} test users ({split.describe()})")
    ks = (5, 10, 20)

    retrievers = {}
    for name in baselines:
        b = create_model(name)
        t = time.perf_counter()
        b.fit(split.train, valid=split.valid)
        r = evaluate(b, test, ks=ks)
        retrievers[name] = {
            "test": r.metrics,
            "fit_seconds": time.perf_counter() - t,
            "config": dataclasses.asdict(b.config),
        }
        log(f"{name}: {headline(r.metrics)}")

    model = BIGRec(cfg)
    t = time.perf_counter()
    model.fit(split.train)
    fit_s = time.perf_counter() - t
    log(f"SFT: {model.train_info_.get('pairs')} pairs, {model.train_info_.get('steps')} steps, {fit_s:.0f}s")
    histories = [test.history(i) for i in range(len(test))]
    targets = [int(test.targets(i)[0]) for i in range(len(test))]
    stages = []

    def run_stage(stage: str) -> None:
        lp = model.target_logprob(histories, targets)
        for grounding in ("trie", "l2"):
            model.reset_stats()
            r = evaluate(model, test, ks=ks, batch_size=16, decode={"grounding": grounding})
            stats = model.run_info()["stats"]
            stages.append(
                {
                    "stage": stage,
                    "grounding": grounding,
                    "test": r.metrics,
                    "target_logprob_per_token": lp,
                    "eval_seconds": r.seconds,
                    "seconds_per_user": r.seconds / max(len(test), 1),
                    "stats": stats,
                }
            )
            log(f"{stage} / {grounding}: {headline(r.metrics)}; OOC {stats.get('out_of_catalogue_rate', 0):.3f}")

    run_stage("sft")
    if dpo_samples:
        t = time.perf_counter()
        info = model.run_dpo(dpo_samples)
        log(f"DPO: {info.get('pairs')} pairs of {info.get('candidates')} samples, {time.perf_counter() - t:.0f}s")
        run_stage("sft+dpo")
    info = model.run_info()
    result = {
        "schema": "recgen-llm/1",
        "task": "bigrec",
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "protocol": {
            **split.protocol,
            "description": split.describe(),
            "exclude_seen": True,
            "ranking": "full catalogue",
        },
        "backend": info["llm"]["backend"],
        "model_file": info["llm"]["model_file"],
        "model_sha256": info["llm"]["model_sha256"],
        "prompt_template": PROMPT_VERSION,
        "temperature": 0.0,
        "seed": cfg.seed,
        "config": dataclasses.asdict(cfg),
        "dpo_samples": dpo_samples,
        "n_test": len(test),
        "fit_seconds": fit_s,
        "train": info["train"],
        "stages": stages,
        "retrievers": retrievers,
        **provenance(commit, command),
    }
    users = f"-u{max_eval_users}" if max_eval_users else ""
    path_out = Path(out_dir) / f"{ds.name}__bigrec-study{users}__seed{cfg.seed}.json"
    write_json(result, path_out)
    result["_path"] = str(path_out)
    return result
