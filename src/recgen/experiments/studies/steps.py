"""Inference steps vs accuracy for diffusion recommenders (``recgen diffusion-steps``).

One model is fitted (validation-chosen epoch, seed 0 unless told), then the test set is evaluated with the
reverse process cut to each requested number of steps (``inference_steps``); accuracy, evaluation users/s and
milliseconds per user are written to one JSON file (schema ``recgen-steps/1``) and plotted from it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recgen.config import make_config, to_dict
from recgen.data.loaders import load_dataset
from recgen.data.split import make_split
from recgen.errors import ConfigError
from recgen.eval.evaluator import evaluate
from recgen.experiments.results import git_commit, provenance, write_json
from recgen.models.registry import get_model_class

SCHEMA = "recgen-steps/1"


def run_steps_sweep(
    dataset: str,
    model: str,
    steps: Sequence[int],
    *,
    sets: dict[str, Any] | None = None,
    data_dir: str | None = None,
    protocol: str = "leave-one-out",
    split_args: dict[str, Any] | None = None,
    seed: int = 0,
    out_dir: str | Path = "benchmarks/results/steps",
    command: str | None = None,
    log=print,
) -> dict[str, Any]:
    klass = get_model_class(model)
    if "inference_steps" not in klass.decode_fields:
        raise ConfigError(
            f"model {model!r} has no inference_steps; use a diffusion model (diffrec, ldiffrec, dreamrec)"
        )
    cfg = make_config(klass.Config, {**(sets or {}), "seed": seed})
    if getattr(cfg, "inference_steps", 0) == -1:
        cfg = dataclasses.replace(cfg, inference_steps=0)  # the sweep sets the steps itself
    bad = [s for s in steps if not 1 <= s <= cfg.steps]
    if not steps or bad:
        raise ConfigError(f"steps to evaluate must be in [1, {cfg.steps}] (the model's diffusion steps), got {bad}")
    commit = git_commit()
    ds = load_dataset(dataset, data_dir=data_dir)
    split = make_split(ds, protocol, **(split_args or {}))
    m = klass(cfg)
    t0 = time.perf_counter()
    m.fit(split.train, valid=split.valid)
    fit_s = time.perf_counter() - t0
    log(f"fitted {model} on {ds.name} in {fit_s:.1f}s (best epoch {m.best_epoch_})")
    points = []
    for s in sorted(set(int(v) for v in steps)):
        rv = evaluate(m, split.valid, ks=(10,), decode={"inference_steps": s})
        rt = evaluate(m, split.test, ks=(5, 10, 20), decode={"inference_steps": s})
        points.append(
            {
                "inference_steps": s,
                "valid": rv.metrics,
                "test": rt.metrics,
                "eval_users_per_second": rt.users_per_second,
                "ms_per_user": 1000.0 / max(rt.users_per_second, 1e-9),
            }
        )
        log(
            f"steps {s}: test recall@10={rt.metrics['recall@10']:.4f} ndcg@10={rt.metrics['ndcg@10']:.4f}, "
            f"{rt.users_per_second:.0f} users/s"
        )
    result = {
        "schema": SCHEMA,
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "protocol": {**split.protocol, "description": split.describe()},
        "model": model,
        "config": to_dict(cfg),
        "seed": seed,
        "fit_seconds": fit_s,
        "best_epoch": m.best_epoch_,
        "points": points,
        **provenance(commit, command),
    }
    name = f"{ds.name}__{model}__{split.protocol.get('name', 'protocol')}__steps.json"
    path = write_json(result, Path(out_dir) / name)
    result["_path"] = str(path)
    return result


def is_steps_result(r: dict[str, Any]) -> bool:
    return r["schema"] == SCHEMA


def load_steps_results(folder: str | Path) -> list[dict[str, Any]]:
    from recgen.experiments.results import read_json_results

    return [r for r in read_json_results(folder) if is_steps_result(r)] if Path(folder).is_dir() else []


def steps_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | model | protocol | inference steps (of T) | R@10 | N@10 | eval users/s | ms/user |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for p in r["points"]:
            lines.append(
                f"| {r['dataset']} | {r['model']} | {r['protocol'].get('name')} | {p['inference_steps']} "
                f"(of {r['config']['steps']}) | {p['test']['recall@10']:.4f} | {p['test']['ndcg@10']:.4f} | "
                f"{p['eval_users_per_second']:.0f} | {p['ms_per_user']:.2f} |"
            )
    return "\n".join(lines)


def steps_plot(results: list[dict[str, Any]], out: str | Path, metric: str = "ndcg@10") -> Path:
    """Test metric (left) and ms per user (right) against inference steps, one line per (dataset, model)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recgen.experiments.plots import save_figure

    if not results:
        raise ConfigError("no steps results to plot; run `recgen diffusion-steps` first")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in results:
        xs = [p["inference_steps"] for p in r["points"]]
        label = f"{r['dataset']} {r['model']} (T={r['config']['steps']})"
        axes[0].plot(xs, [p["test"][metric] for p in r["points"]], marker="o", label=label)
        axes[1].plot(xs, [p["ms_per_user"] for p in r["points"]], marker="o", label=label)
    axes[0].set_ylabel(f"test {metric}")
    axes[1].set_ylabel("inference ms per user (CPU)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("reverse diffusion steps at inference")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Diffusion recommenders: inference steps vs accuracy and cost")
    return save_figure(fig, out)


def is_dreamrec_scoring(r: dict[str, Any]) -> bool:
    return r.get("schema") == "recgen-dreamrec-scoring/1"


def dreamrec_scoring_table(results: list[dict[str, Any]]) -> str:
    """``benchmarks/dreamrec_scoring.py`` files: one fitted DreamRec scored five ways, Pop on the same users."""
    lines = [
        "| dataset | item table | best epoch | test users | scoring | valid N@10 | test R@10 | test N@10 "
        "| Pop R@10 / N@10 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        table = "own (the reference)" if not r.get("item_table") else f"{r['item_table']['model']}, frozen"
        pop = f"{r['pop_test_recall10']:.4f} / {r['pop_test_ndcg10']:.4f}"
        for v in r["variants"]:
            lines.append(
                f"| {r['dataset']} | {table} | {r['best_epoch']} | {r['test_users']} | {v['variant']} | "
                f"{v['valid_ndcg@10']:.4f} | {v['test_recall@10']:.4f} | {v['test_ndcg@10']:.4f} | {pop} |"
            )
    return "\n".join(lines)
