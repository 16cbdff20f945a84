"""``recgen augment cold-start``: synthetic interactions for cold items (the ColdLLM / LLM4IDRec idea), measured
on the item cold-start protocol.

A seeded share of the items is new (``recgen.data.split.item_cold_start``: no training interaction, test reported
on cold and warm users). For each cold item, the users whose training history is closest to it in content
(all-MiniLM-L6-v2 over title and metadata, ``ContentKNN``'s embeddings; closeness as a z-score over the catalogue
per user, so the same "average" users are not picked for every item) are candidates; a filter decides which of
them would interact: ``none`` (the ``per_item`` closest are accepted), ``margin`` (a candidate is accepted only if
the item is closer to the user's history than the user's own median training item is: a learned-from-data
threshold) or ``llm`` (the LLM's Platt-calibrated yes/no from ``recgen.data.simulate``, on the user's agent built
from training data). The accepted pairs are added to training only (after the user's last training interaction),
the model is refitted, and cold and warm test users are measured, beside the same model without augmentation and
the content-only model. Where ColdLLM differs: it trains an embedding simulator and ranks users with it before the
LLM filter; here the candidate users come from text similarity alone.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recgen.data.loaders import load_dataset
from recgen.data.split import ITEM_COLD_FRAC, item_cold_start
from recgen.errors import ConfigError
from recgen.eval.evaluator import evaluate
from recgen.experiments.results import git_commit, provenance, settings_tag, write_json
from recgen.models.registry import create_model

FILTERS = ("none", "margin", "llm")


def _evaluate_parts(model: Any, split: Any) -> dict[str, dict[str, float]]:
    out = {"all": evaluate(model, split.test, ks=(10, 20)).metrics}
    for part, es in split.test_parts.items():
        out[part] = evaluate(model, es, ks=(10, 20)).metrics if len(es) else {}
    return out


def synthetic_pairs(train: Any, emb: np.ndarray, cold: np.ndarray, per_item: int, filt: str, *, llm: Any = None,
                    candidates: int = 3) -> tuple[list[tuple[int, int]], dict[str, Any]]:  # fmt: skip
    """(user, cold item) pairs to add to training, and what the filter did."""
    indptr, items, _ = train.user_timelines()
    users = np.flatnonzero(np.diff(indptr)[1:] > 0) + 1
    profile = np.zeros((train.users.size, emb.shape[1]), np.float32)
    median_own = np.zeros(train.users.size, np.float32)
    for u in users:
        h = items[indptr[u] : indptr[u + 1]]
        profile[u] = emb[h].mean(0)
        median_own[u] = float(np.median(emb[h] @ profile[u]))
    sims = profile[users] @ emb[cold].T  # (U, C)
    # rank users per item by how much closer the item is to them than items in general are (a z-score over the
    # catalogue): raw similarity favours the same "average" users for every item
    all_sims = profile[users] @ emb[1:].T
    z = (sims - all_sims.mean(1, keepdims=True)) / (all_sims.std(1, keepdims=True) + 1e-9)
    pairs, proposed = [], 0
    width = per_item * candidates if filt != "none" else per_item
    proposals = [users[np.argsort(-z[:, c], kind="stable")[:width]] for c in range(len(cold))]
    probs: dict[tuple[int, int], float] = {}
    if filt == "llm":
        from recgen.data.simulate.agents import build_agents
        from recgen.data.simulate.deciders import GroundedDecider, LLMDecider

        decider = LLMDecider(train, llm)
        decider.calibrate(GroundedDecider(train))
        asked: dict[int, list[int]] = {}
        for item, chosen in zip(cold, proposals, strict=True):
            for u in chosen:
                asked.setdefault(int(u), []).append(int(item))
        # user by user: the prompts of one persona share their start, which the LLM evaluates once (prefix reuse)
        for a in build_agents(train, [str(x) for x in train.users.external(np.asarray(sorted(asked)))]):
            for item, p in zip(asked[a.dense], decider.watch_probs(a, asked[a.dense]), strict=True):
                probs[(a.dense, item)] = float(p)
    for c_idx, (item, chosen) in enumerate(zip(cold, proposals, strict=True)):
        proposed += len(chosen)
        if filt == "margin":
            chosen = [u for u in chosen if sims[np.searchsorted(users, u), c_idx] >= median_own[u]][:per_item]
        elif filt == "llm":
            chosen = [u for u in chosen if probs[(int(u), int(item))] >= 0.5][:per_item]
        pairs += [(int(u), int(item)) for u in chosen]
    return pairs, {"proposed": proposed, "accepted": len(pairs),
                   "acceptance_rate": len(pairs) / proposed if proposed else 0.0,
                   "per_cold_item": len(pairs) / max(len(cold), 1),
                   **({"llm_decisions": len(probs)} if filt == "llm" else {})}  # fmt: skip


def augmented(train: Any, pairs: list[tuple[int, int]]) -> Any:
    """``train`` plus the synthetic pairs, each after its user's last training interaction."""
    if not pairs:
        return train
    u = np.asarray([p[0] for p in pairs], dtype=np.int64)
    i = np.asarray([p[1] for p in pairs], dtype=np.int64)
    last = np.full(train.users.size, -np.inf)
    np.maximum.at(last, train.user_ids, train.timestamps)
    ts = last[u] + 1.0
    ratings = None if train.ratings is None else np.r_[train.ratings, np.full(len(u), 4.0, np.float32)]
    return dataclasses.replace(
        train, user_ids=np.r_[train.user_ids, u], item_ids=np.r_[train.item_ids, i],
        timestamps=np.r_[train.timestamps, ts], ratings=ratings,
        meta={**train.meta, "synthetic_interactions": len(pairs)},
    )  # fmt: skip


def run_cold_start_study(
    dataset: str,
    *,
    models: Sequence[str] = ("ease",),
    filters: Sequence[str] = ("none", "margin"),
    per_item: int = 20,
    cold_frac: float = ITEM_COLD_FRAC,
    llm: str | None = None,
    sets: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    out_dir: str = "benchmarks/results/coldstart",
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    bad = [f for f in filters if f not in FILTERS]
    if bad or per_item < 1:
        raise ConfigError(f"--filters takes {', '.join(FILTERS)} and --per-item must be >= 1; got {list(filters)}")
    commit = git_commit()
    ds = load_dataset(dataset, **(data or {}))
    split = item_cold_start(ds, cold_frac=cold_frac)
    log(f"{ds.name}: {split.describe()}; {split.protocol['cold_items']} cold items, "
        f"{split.protocol['cold_test_users']} cold / {split.protocol['warm_test_users']} warm test users")  # fmt: skip
    content = create_model("contentknn").fit(split.train)
    rows = [{"model": "contentknn", "augmentation": "none (content only)", "metrics": _evaluate_parts(content, split)}]
    backend = None
    if "llm" in filters:
        from recgen.llm import load_llm

        backend = load_llm(llm)
    plans = {f: synthetic_pairs(split.train, content.emb_, split.cold_items, per_item, f, llm=backend) for f in filters}
    for name in models:
        per = {k.split(".", 1)[1]: v for k, v in (sets or {}).items() if k.startswith(f"{name}.")}
        for label, train, stats in [("none", split.train, None)] + [
            (f"synthetic ({f} filter)", augmented(split.train, pairs), st) for f, (pairs, st) in plans.items()
        ]:
            t0 = time.perf_counter()
            model = create_model(name, **per).fit(train, valid=split.valid)
            row = {"model": name, "settings": per, "augmentation": label, "metrics": _evaluate_parts(model, split),
                   "fit_seconds": time.perf_counter() - t0, **({"synthetic": stats} if stats else {})}  # fmt: skip
            rows.append(row)
    for r in rows:
        m = r["metrics"]
        log(f"{r['model']} / {r['augmentation']}: cold R@20 {m['cold'].get('recall@20', 0):.4f}, warm R@20 "
            f"{m['warm'].get('recall@20', 0):.4f}, all N@10 {m['all']['ndcg@10']:.4f}")  # fmt: skip
    result = {
        "schema": "recgen-coldstart/1",
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "protocol": {**split.protocol, "description": split.describe(), "per_item": per_item},
        "llm": backend.info() if backend is not None else None,
        "rows": rows,
        **provenance(commit, command),
    }
    # settings make a different run: their hash names it (runs without settings keep the plain name)
    tag = settings_tag(sets)
    path = Path(out_dir) / f"{ds.name}__coldstart__{'-'.join(models)}__{'-'.join(filters)}{tag}.json"
    result["_path"] = str(write_json(result, path))
    return result


def is_coldstart_result(r: dict[str, Any]) -> bool:
    return r.get("schema") == "recgen-coldstart/1"


def coldstart_table(results: list[dict[str, Any]]) -> str:
    """Recall@20 / NDCG@20 on all, cold and warm test users per model and augmentation; synthetic counts."""
    lines = [
        "| dataset | model | augmentation | cold users R@20 / N@20 | warm users R@20 / N@20 | all R@20 | "
        "synthetic accepted (per cold item) |",
        "|---|---|---|---|---|---|---|",
    ]
    seen, notes = set(), {}
    for r in sorted(results, key=lambda r: (r["dataset"], r["rows"][-1]["model"], len(r["rows"]))):
        for row in r["rows"]:
            text = {k: v for k, v in (row.get("settings") or {}).items() if k in ("item_text", "text_mode")}
            model = row["model"] + (f" ({', '.join(map(str, text.values()))} text)" if text else "")
            key = (r["dataset"], model, row["augmentation"], r["protocol"].get("per_item"))
            if key in seen:  # the content-only row of every run on the same split
                continue
            seen.add(key)
            m, syn = row["metrics"], row.get("synthetic")
            cells = [r["dataset"], model, row["augmentation"]]
            cells += [f"{m[p]['recall@20']:.4f} / {m[p]['ndcg@20']:.4f}" for p in ("cold", "warm")]
            made = f"{syn['accepted']} of {syn['proposed']} ({syn['per_cold_item']:.1f})" if syn else "–"
            cells += [f"{m['all']['recall@20']:.4f}", made]
            lines.append("| " + " | ".join(cells) + " |")
        p = r["protocol"]
        notes[r["dataset"]] = (
            f"{r['dataset']}: {p['cold_items']} cold items ({p['cold_frac']:.0%}), {p['cold_test_users']} cold and "
            f"{p['warm_test_users']} warm test users; one seed."
        )
    lines += ["", *notes.values()]
    return "\n".join(lines)
