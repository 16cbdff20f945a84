"""Plots generated from results files only (matplotlib, headless)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from recgen.errors import ConfigError
from recgen.experiments.results import DEFAULT_RESULTS_DIR, load_results
from recgen.io import atomic_write_file

SIZE_FIELDS = ("embedding_dim", "n_layers")  # what a size study varies; every other config field is the recipe


def _points(results: list[dict[str, Any]], dataset: str, metric: str) -> dict[str, list[tuple[float, float, float]]]:
    """line label -> [(non-embedding params, training FLOPs, test metric)] for results with speed figures, one line
    per model and recipe (the config without its size fields): runs of another recipe (say dropout 0.5 beside 0.2)
    in the same folder get their own line, labelled with the fields that set it apart, never joined to this one."""
    runs: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    recipes: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        if r["dataset"] != dataset:
            continue
        seeds = r.get("per_seed", [])
        params = [e.get("non_embedding_parameters") for e in seeds]
        flops = [e.get("train_speed", {}).get("train_flops", 0.0) for e in seeds]
        if not seeds or None in params or not all(flops):
            continue
        recipe = {k: v for k, v in r.get("config", {}).items() if k not in SIZE_FIELDS}
        key = (r["model"], json.dumps(recipe, sort_keys=True, default=str))
        recipes[key] = recipe
        runs[key].append((float(params[0]), sum(flops) / len(flops), r["test"][metric]))
    out = {}
    for (model, rkey), pts in runs.items():
        others = [recipes[k] for k in recipes if k[0] == model and k[1] != rkey]
        mine = recipes[(model, rkey)]
        apart = sorted(k for k in mine if any(o.get(k) != mine[k] for o in others))
        out[model + (f" ({', '.join(f'{k}={mine[k]}' for k in apart)})" if apart else "")] = sorted(pts)
    return out


def scaling_plot(
    dataset: str, out: str | Path, *, results_dir: str | Path = DEFAULT_RESULTS_DIR, metric: str = "ndcg@10"
) -> Path:
    """Test metric against non-embedding parameters and against training FLOPs, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = _points(load_results(results_dir), dataset, metric)
    if not points:
        raise ConfigError(
            f"no results with parameter counts and training speed for dataset {dataset!r} in "
            f"{results_dir}; run `recgen bench` on a sequence model first"
        )
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for model, pts in sorted(points.items()):
        params, flops, values = zip(*pts, strict=True)
        axes[0].plot(params, values, marker="o", label=model)
        axes[1].plot(flops, values, marker="o", label=model)
    for ax, xlabel in zip(
        axes,
        ("non-embedding parameters", "training FLOPs (whole run, matmuls, counted on computed shapes)"),
        strict=True,
    ):
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"test {metric}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"{dataset}: test {metric} vs model size (full ranking, leave-one-out)")
    return save_figure(fig, out)


def save_figure(fig: Any, out: str | Path) -> Path:
    """Lay out, write atomically (a temp file renamed onto ``out``, in the format its suffix names) and close."""
    import matplotlib.pyplot as plt

    fmt = Path(out).suffix.lstrip(".") or "png"
    try:
        fig.tight_layout()
        return atomic_write_file(out, lambda tmp: fig.savefig(tmp, dpi=120, format=fmt))
    finally:
        plt.close(fig)
