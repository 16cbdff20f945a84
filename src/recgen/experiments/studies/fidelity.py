"""``recgen simulate fidelity``: how faithfully simulated users behave like the users they stand for (Agent4Rec's
alignment tests, Zhang et al., SIGIR 2024).

Data: a per-user chronological split (``user-temporal``: each user's last 20% test, the 10% before validation);
agents are built from the training part only. For each of ``n_agents`` seeded users with a held-out item they
liked (rated 4 or 5 where the data has ratings; every held-out item where it has none):

- **1:m discrimination**: the agent sees up to ``max_positives`` of its held-out liked items mixed with m times as
  many items its user never interacted with (uniformly drawn, seeded), and says for each whether it would watch it
  (its decider's probability at least 0.5). Accuracy, precision, recall and F1 over all decisions of all agents,
  for m = 1, 2, 3, 9 (the m = 9 draw extends the m = 1 one: the same first negatives). AUC beside them, which
  needs no threshold.
- **Ratings** (data with ratings): the agent rates up to ``max_rated`` of its held-out items; RMSE and MAE of its
  integer ratings (what the simulation logs) against the real ones, and the distribution of simulated ratings
  against the real distribution (total variation distance).

Rows: every decider of ``recgen.data.simulate.deciders`` (random, popularity, grounded, LLM alone, LLM + grounded);
published simulators for scale, labelled (other LLMs, other data and splits).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recgen.data.loaders import load_dataset
from recgen.data.simulate.agents import build_agents
from recgen.data.simulate.deciders import DECIDERS, GroundedDecider, LLMDecider, make_decider
from recgen.data.split import user_temporal_split
from recgen.errors import ConfigError, DataError
from recgen.experiments.published import PUBLISHED_SIMULATION
from recgen.experiments.results import git_commit, provenance, write_json

MS = (1, 2, 3, 9)


def fidelity_cases(ds, split, *, n_agents: int, max_m: int, max_positives: int, max_rated: int, seed: int = 0):
    """Per sampled agent user: its held-out liked items, its negatives (max_m per positive) and rated items."""
    rating = {}
    if ds.ratings is not None:
        rating = dict(
            zip(zip(ds.user_ids.tolist(), ds.item_ids.tolist(), strict=True), ds.ratings.tolist(), strict=True)
        )
    seen_by = [set() for _ in range(ds.users.size)]
    for u, i in zip(ds.user_ids.tolist(), ds.item_ids.tolist(), strict=True):
        seen_by[u].add(i)
    test = split.test
    cases = []
    for row in range(test.n_users):
        u = int(test.user_ids[row])
        held = [int(i) for i in test.targets(row)]
        liked = [i for i in held if not rating or rating[(u, i)] >= 4]
        if liked:
            cases.append({"dense": u, "held": held, "liked": liked})
    if not cases:
        raise DataError(f"{ds.name}: no test user has a held-out item they liked; nothing to discriminate")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(cases), min(n_agents, len(cases)), replace=False))
    n_items = ds.n_items
    out = []
    for c in (cases[i] for i in chosen):
        r = np.random.default_rng([seed, c["dense"]])
        pos = list(r.permutation(c["liked"])[:max_positives])
        need, negs = max_m * len(pos), []
        while len(negs) < need:
            i = int(r.integers(1, n_items + 1))
            if i not in seen_by[c["dense"]] and i not in negs:
                negs.append(i)
        rated = list(r.permutation(c["held"])[:max_rated]) if rating else []
        out.append({
            "dense": c["dense"], "positives": [int(i) for i in pos], "negatives": negs,
            "rated": [int(i) for i in rated], "true_ratings": [float(rating[(c["dense"], int(i))]) for i in rated],
        })  # fmt: skip
    return out


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability a positive scores above a negative (ties count half)."""
    allv = np.r_[pos, neg]
    ranks = np.empty(len(allv))
    order = np.argsort(allv, kind="stable")
    ranks[order] = np.arange(1, len(allv) + 1)
    for v in np.unique(allv):  # average ranks of ties
        same = allv == v
        ranks[same] = ranks[same].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def discrimination(cases, probs: list[tuple[np.ndarray, np.ndarray]], m: int, threshold: float = 0.5) -> dict:
    """Accuracy / precision / recall / F1 / AUC of "would watch" at 1:m, pooled over agents."""
    tp = fp = fn = tn = 0
    allp, alln = [], []
    for c, (pp, pn) in zip(cases, probs, strict=True):
        pn = pn[: m * len(c["positives"])]
        tp += int((pp >= threshold).sum())
        fn += int((pp < threshold).sum())
        fp += int((pn >= threshold).sum())
        tn += int((pn < threshold).sum())
        allp.append(pp)
        alln.append(pn)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": (tp + tn) / max(tp + tn + fp + fn, 1),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "auc": _auc(np.concatenate(allp), np.concatenate(alln)),
        "decisions": tp + tn + fp + fn,
    }


def rating_fit(true: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """RMSE / MAE of the agents' integer ratings, and their distribution against the real one."""
    sim = np.clip(np.rint(predicted), 1, 5)
    real_dist = np.bincount(true.astype(int), minlength=6)[1:] / len(true)
    sim_dist = np.bincount(sim.astype(int), minlength=6)[1:] / len(sim)
    return {
        "rmse": float(np.sqrt(np.mean((sim - true) ** 2))),
        "mae": float(np.mean(np.abs(sim - true))),
        "rmse_unrounded": float(np.sqrt(np.mean((np.clip(predicted, 1, 5) - true) ** 2))),
        "simulated_distribution": [round(float(x), 4) for x in sim_dist],
        "real_distribution": [round(float(x), 4) for x in real_dist],
        "total_variation": float(0.5 * np.abs(sim_dist - real_dist).sum()),
        "n": len(true),
    }


def run_fidelity_study(
    dataset: str,
    *,
    deciders: Sequence[str] = DECIDERS,
    ms: Sequence[int] = MS,
    n_agents: int = 200,
    max_positives: int = 3,
    max_rated: int = 10,
    llm: str | None = None,
    llm_cache: str | None = None,
    sets: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    out_dir: str = "benchmarks/results/simulation",
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure each decider on the same agents and items; write ``<dataset>__fidelity__a<N>.json``."""
    bad = [d for d in deciders if d not in DECIDERS]
    if bad or not deciders:
        raise ConfigError(f"unknown decider(s) {bad}; use some of {', '.join(DECIDERS)}")
    if not ms or min(ms) < 1:
        raise ConfigError(f"m must be integers >= 1, got {list(ms)}")
    if n_agents < 1:
        raise ConfigError(f"--agents must be >= 1, got {n_agents}")
    commit = git_commit()
    ds = load_dataset(dataset, **(data or {}))
    split = user_temporal_split(ds)
    cases = fidelity_cases(ds, split, n_agents=n_agents, max_m=max(ms), max_positives=max_positives,
                           max_rated=max_rated)  # fmt: skip
    users = [str(u) for u in ds.users.external(np.asarray([c["dense"] for c in cases]))]
    agents = build_agents(split.train, users)
    n_dec = sum(len(c["positives"]) * (1 + max(ms)) for c in cases)
    log(f"{ds.name}: {split.describe()}; {len(cases)} agents, {n_dec} watch decisions, "
        f"{sum(len(c['rated']) for c in cases)} ratings")  # fmt: skip
    model = None
    if any(d.startswith("llm") for d in deciders):
        from recgen.llm import load_llm

        model = load_llm(llm, cache=llm_cache)
    grounded = (
        GroundedDecider(split.train) if any(d.endswith("grounded") or d.startswith("llm") for d in deciders) else None
    )
    llm_decider = LLMDecider(split.train, model) if model is not None else None  # one, so answers are shared
    rows = []
    for name in deciders:
        dec = make_decider(name, split.train, llm=llm_decider, grounded=grounded)
        counter = getattr(dec, "calls", None) or getattr(getattr(dec, "llm", None), "calls", None)
        before = dict(counter or {})
        t0 = time.perf_counter()
        probs, true, pred = [], [], []
        for agent, c in zip(agents, cases, strict=True):
            p = dec.watch_probs(agent, c["positives"] + c["negatives"])
            probs.append((p[: len(c["positives"])], p[len(c["positives"]) :]))
            if c["rated"]:
                pred.append(dec.ratings(agent, c["rated"]))
                true.append(c["true_ratings"])
        row: dict[str, Any] = {"decider": name, "seconds": time.perf_counter() - t0}
        for m in ms:
            row[f"m{m}"] = discrimination(cases, probs, m)
        if true:
            row["ratings"] = rating_fit(np.concatenate(true), np.concatenate(pred))
        if counter is not None:  # the calls this row made (the llm+grounded row reuses the llm row's answers)
            row["llm_calls"] = {k: v - before.get(k, 0) for k, v in counter.items()}
        rows.append(row)
        r = row.get("ratings", {})
        log(f"{name}: " + ", ".join(f"1:{m} acc {row[f'm{m}']['accuracy']:.3f} F1 {row[f'm{m}']['f1']:.3f}" for m in ms)
            + (f"; RMSE {r['rmse']:.3f}" if r else "") + f" ({row['seconds']:.1f}s)")  # fmt: skip
    result = {
        "schema": "recgen-simulation/1",
        "task": "fidelity",
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "protocol": {
            **split.protocol,
            "description": split.describe(),
            "agents": len(cases),
            "seed": 0,
            "max_positives": max_positives,
            "max_rated": max_rated,
            "threshold": 0.5,
        },  # fmt: skip
        "ms": list(ms),
        "llm": model.info() if model is not None else None,
        "llm_calibration_pairs": getattr(llm_decider, "calibration_pairs", None),
        "grounded_fit_pairs": grounded.fit_pairs if grounded is not None else None,
        "rows": rows,
        "published": PUBLISHED_SIMULATION,
        **provenance(commit, command),
    }
    if model is not None:
        model.close()
    path = Path(out_dir) / f"{ds.name}__fidelity__a{len(cases)}.json"
    result["_path"] = str(write_json(result, path))
    return result
