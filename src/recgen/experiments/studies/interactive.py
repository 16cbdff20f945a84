"""``recgen simulate interactive``: any registered recommender in front of simulated users, page after page
(Agent4Rec's recommender evaluation), beside its offline NDCG@10 on the same split.

Each model is fitted by the harness (its registry defaults, validation-chosen checkpoints where it selects on
validation) on the leave-one-out split and evaluated offline on test (full ranking, seen items excluded). Then
``n_agents`` seeded agents, built from the same training data, browse its pages: page after page, the model ranks
the full catalogue for the agent's history so far (training history plus what it watched in the simulation, in
that order, with timestamps continuing the training ones for time-aware models), the history and every item
already shown are excluded, and the top ``page_size`` items are the page. The agents decide with the default
grounded decider, which is fitted on the training data only and knows nothing of the models.

Per model: items watched per page and in total, the mean rating of watched items, pages before exit and the final
satisfaction (means over agents). The rank agreement between each simulated metric's ordering of the models and
their offline NDCG@10 ordering: Spearman's rho and Kendall's tau (SimUSER reports 0.72 for its offline A/B
agreement). The grounded decider scores items by their co-occurrence similarity with the agent's history, so it
can favour item-item models: that bias is part of what the agreement figure measures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recgen.config import make_config
from recgen.data.loaders import load_dataset
from recgen.data.simulate.agents import AgentProfile, build_agents
from recgen.data.simulate.deciders import DECIDERS, GroundedDecider, make_decider
from recgen.data.simulate.session import SimulationConfig, run_agents
from recgen.data.split import leave_one_out
from recgen.errors import ConfigError
from recgen.eval.evaluator import evaluate
from recgen.experiments.results import git_commit, provenance, write_json
from recgen.models.registry import get_model_class
from recgen.ops.topk import stable_topk

MODELS = ("pop", "itemknn", "ease", "sasrec", "hstu", "tiger", "diffrec")
METRICS = ("watched", "watched_per_page", "mean_rating", "pages", "satisfaction")


def model_pages(model: Any, train: Any, page_size: int) -> Callable[[AgentProfile, list[int], set[int]], list[int]]:
    """A page source over a fitted recgen model: the top items for the agent's history so far, the history and
    the items already shown excluded (dense ids of ``train``, mapped to the model's by external id)."""
    ext = train.items.external(np.arange(1, train.items.size))
    to_model = np.r_[0, model.items_.lookup(ext, default=0)].astype(np.int64)
    from_model = np.zeros(model.items_.size, dtype=np.int64)
    from_model[to_model[1:]] = np.arange(1, train.items.size)
    from_model[0] = 0
    user_map = {}

    def next_page(agent: AgentProfile, history: list[int], shown: set[int]) -> list[int]:
        if agent.user not in user_map:
            user_map[agent.user] = int(model.users_.index(agent.user, default=0))
        u = user_map[agent.user]
        hist = to_model[np.asarray(history, dtype=np.int64)]
        hist = hist[hist > 0]
        times = None
        if model.uses_timestamps:
            t = model.train_times(u).astype(np.float64)
            extra = len(hist) - len(t)
            step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
            times = [np.r_[t, t[-1] + step * np.arange(1, extra + 1)] if len(t) else np.arange(len(hist), dtype=float)]
        with torch.no_grad():
            scores = model.score_masked(np.asarray([u]), [hist], timestamps=times)
        gone = to_model[np.asarray(sorted(shown), dtype=np.int64)] if shown else np.zeros(0, np.int64)
        scores[0, torch.from_numpy(gone[gone > 0])] = -torch.inf
        vals, idx = stable_topk(scores, page_size)
        keep = torch.isfinite(vals[0])
        return [int(from_model[i]) for i in idx[0][keep].tolist() if from_model[i] > 0]

    return next_page


def _rank_agreement(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr

    rho = spearmanr(x, y).statistic
    tau = kendalltau(x, y).statistic
    return {"spearman": float(rho), "kendall": float(tau)}


def run_interactive_study(
    dataset: str,
    *,
    models: Sequence[str] = MODELS,
    n_agents: int = 300,
    decider: str = "grounded",
    page_size: int = 4,
    llm: str | None = None,
    sets: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    out_dir: str = "benchmarks/results/simulation",
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fit each model, evaluate it offline, simulate ``n_agents`` agents on its pages; write
    ``<dataset>__interactive__a<N>.json`` (and each model's session log beside it, JSONL)."""
    if len(models) < 2:
        raise ConfigError("the interactive study compares models: give at least two")
    if decider not in DECIDERS:
        raise ConfigError(f"unknown decider {decider!r}; use one of {', '.join(DECIDERS)}")
    per_model: dict[str, dict[str, Any]] = {m: {} for m in models}
    for key, value in (sets or {}).items():  # --set sasrec.epochs=50
        name, dot, field = key.partition(".")
        if not dot or name not in per_model:
            raise ConfigError(f"--set takes MODEL.FIELD=VALUE for one of the models {list(models)}, got {key!r}")
        per_model[name][field] = value
    classes = {m: get_model_class(m) for m in models}
    configs = {m: make_config(classes[m].Config, per_model[m]) for m in models}  # checked before any fitting
    commit = git_commit()
    ds = load_dataset(dataset, **(data or {}))
    split = leave_one_out(ds)
    rng = np.random.default_rng(0)
    users = [str(u) for u in ds.users.external(split.test.user_ids)]
    users = sorted(rng.choice(users, min(n_agents, len(users)), replace=False).tolist(), key=users.index)
    llm_backend = None
    if decider.startswith("llm"):
        from recgen.llm import load_llm

        llm_backend = load_llm(llm)
    dec = make_decider(decider, split.train, llm=llm_backend, grounded=GroundedDecider(split.train))
    cfg = SimulationConfig(page_size=page_size, reasons=True)
    out = Path(out_dir)
    rows = []
    log(f"{ds.name}: {split.describe()}; {len(users)} agents, decider {decider}")
    for name in models:
        t0 = time.perf_counter()
        model = classes[name](configs[name]).fit(split.train, valid=split.valid)
        fit_seconds = time.perf_counter() - t0
        offline = evaluate(model, split.test, ks=(10,)).metrics
        agents = build_agents(split.train, users)
        log_path = out / f"{ds.name}__interactive__a{len(users)}__{name}.jsonl"
        log_path.unlink(missing_ok=True)  # a fresh model: its agents run again
        t1 = time.perf_counter()
        summaries = run_agents(agents, dec, model_pages(model, split.train, page_size), split.train, cfg, log_path)
        sim_seconds = time.perf_counter() - t1
        row: dict[str, Any] = {
            "model": name,
            "config_overrides": per_model[name],
            "offline_ndcg@10": offline["ndcg@10"],
            "offline_recall@10": offline["recall@10"],
            "fit_seconds": fit_seconds,
            "simulation_seconds": sim_seconds,
            "agents": len(summaries),
            "log": log_path.name,
        }
        for metric in METRICS:
            values = [s[metric] for s in summaries if s.get(metric) is not None]
            row[metric] = float(np.mean(values)) if values else None
        rows.append(row)
        log(f"{name}: offline N@10 {row['offline_ndcg@10']:.4f}; watched {row['watched']:.2f} "
            f"({row['watched_per_page']:.2f}/page), rating {row['mean_rating'] or 0:.2f}, "
            f"pages {row['pages']:.2f}, satisfaction {row['satisfaction']:.2f} "
            f"(fit {fit_seconds:.0f}s, simulation {sim_seconds:.0f}s)")  # fmt: skip
    offline_order = [r["offline_ndcg@10"] for r in rows]
    agreement = {
        metric: _rank_agreement([r[metric] if r[metric] is not None else 0.0 for r in rows], offline_order)
        for metric in METRICS
    }
    result = {
        "schema": "recgen-simulation/1",
        "task": "interactive",
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "protocol": {
            **split.protocol,
            "description": split.describe(),
            "agents": len(users),
            "seed": 0,
            "page_size": page_size,
            "decider": decider,
        },  # fmt: skip
        "rows": rows,
        "agreement_with_offline_ndcg@10": agreement,
        "published_agreement": {
            "simulator": "SimUSER",
            "offline_ab_agreement": 0.72,
            "source": "SimUSER paper; other data, LLM and recommenders",
        },  # fmt: skip
        **provenance(commit, command),
    }
    path = out / f"{ds.name}__interactive__a{len(users)}.json"
    result["_path"] = str(write_json(result, path))
    return result
