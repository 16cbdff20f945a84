"""The text-augmentation table: SASRec and HSTU with item text as item features (``item_text``, ``text_mode``;
``recgen.models.sequential.text_items``) beside the same recipe without text.

The runs are plain ``recgen bench`` results in one folder (``benchmarks/results/text-items/``); for each dataset and
model the run with ``item_text=none`` is the baseline every text row is read against (test NDCG@10, absolute and
relative). Text-only rows (``text_mode=only``) are the ones that can rank an item absent from training.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recgen.experiments.results import fit_seconds_cell, is_bench_result
from recgen.experiments.studies.reasoning import mean_std

TITLE = "text-augmented items on SASRec-CE and HSTU (MiniLM item text as features)"
INTRO = (
    "one recipe per dataset and model, with and without item text; text: which item text is embedded (title, "
    "meta = title + metadata, profile = title + LLM profile); mode: init (ID table from its PCA), fuse (ID + "
    "learned map of the frozen text vector), only (the map alone, no ID table)."
)
MODES = {"init": 1, "fuse": 2, "only": 3}
SOURCES = {"none": 0, "title": 1, "meta": 2, "profile": 3}


def is_text_items_result(r: dict[str, Any]) -> bool:
    return (
        is_bench_result(r)
        and r["model"] in ("sasrec", "hstu")
        and not r["config"].get("reason_steps", 0)
        and not is_text_coldstart_result(r)
        and not is_user_coldstart_result(r)
    )


def is_text_coldstart_result(r: dict[str, Any]) -> bool:
    return is_bench_result(r) and (r.get("protocol") or {}).get("name") == "item-cold-start"


def is_user_coldstart_result(r: dict[str, Any]) -> bool:
    return is_bench_result(r) and (r.get("protocol") or {}).get("name") == "user-cold-start"


def _variant(r: dict[str, Any]) -> tuple[str, str]:
    text = r["config"].get("item_text", "none")
    return text, ("–" if text == "none" else r["config"].get("text_mode", "fuse"))


def text_items_table(rs: list[dict[str, Any]]) -> str:
    rs = [r for r in rs if is_text_items_result(r)]
    base = {(r["dataset"], r["model"]): r for r in rs if _variant(r)[0] == "none"}
    lines = [
        "| dataset | model | text | mode | seeds | valid N@10 | test R@10 | test N@10 | N@10 vs none | fit (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(
        rs, key=lambda r: (r["dataset"], r["model"], MODES.get(_variant(r)[1], 0), SOURCES.get(_variant(r)[0], 9))
    ):
        text, mode = _variant(r)
        n, std = len(r["seeds"]), r.get("test_std") or {}
        b = base.get((r["dataset"], r["model"]))
        delta = "–"
        if b is not None and text != "none":
            d = r["test"]["ndcg@10"] - b["test"]["ndcg@10"]
            delta = f"{d:+.4f} ({d / b['test']['ndcg@10']:+.1%})"
        lines.append(
            f"| {r['dataset']} | {r['model']} | {text} | {mode} | {n} | {r['valid']['ndcg@10']:.4f} | "
            f"{mean_std(r['test']['recall@10'], std.get('recall@10'), n)} | "
            f"{mean_std(r['test']['ndcg@10'], std.get('ndcg@10'), n)} | {delta} | "
            f"{fit_seconds_cell(r, 0)} |"
        )
    return "\n".join(lines)


COLD_TITLE = "item cold start: text-only items beside IDs and content kNN"
COLD_INTRO = (
    "a seeded 15% of the items is new (no training interaction); cold users: the test item is new; unseen = the "
    "model can score an item it never trained on (it says so in the results file)."
)


USER_COLD_TITLE = "user cold start: text-augmented items for users seen through a few interactions"
USER_COLD_INTRO = (
    "a seeded 20% of the users is seen only through their first 5 interactions (the next one validates, the one "
    "after tests); cold users: at most 5 training interactions; warm users: leave-one-out."
)


def text_coldstart_table(rs: list[dict[str, Any]]) -> str:
    """Cold-start runs (item or user protocol): recall / NDCG@10 on all, cold and warm test users."""
    lines = [
        "| dataset | model | text | mode | unseen | seeds | all R@10 | cold R@10 | warm R@10 | cold N@10 | warm N@10 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def order(r: dict[str, Any]) -> tuple:
        return r["dataset"], r["model"], MODES.get(_variant(r)[1], 0), SOURCES.get(_variant(r)[0], 9)

    for r in sorted(rs, key=order):
        text, mode = _variant(r) if r["model"] in ("sasrec", "hstu") else ("–", "–")
        parts = r.get("test_parts") or {}
        cold, warm = parts.get("cold") or {}, parts.get("warm") or {}
        unseen = "yes" if any(e.get("scores_unseen_items") for e in r.get("per_seed") or []) else "no"

        def cell(m: dict[str, Any], key: str, part: str, per_seed: list[dict[str, Any]]) -> str:
            if key not in m:
                return "–"
            seeds = [p[part][key] for p in (e.get("test_parts") or {} for e in per_seed) if key in p.get(part, {})]
            std = float(np.std(seeds, ddof=1)) if len(seeds) > 1 else None
            return mean_std(m[key], std, len(seeds) or 1)

        ps = r.get("per_seed") or []

        lines.append(
            f"| {r['dataset']} | {r['model']} | {text} | {mode} | {unseen} | {len(r['seeds'])} | "
            f"{r['test']['recall@10']:.4f} | {cell(cold, 'recall@10', 'cold', ps)} | "
            f"{cell(warm, 'recall@10', 'warm', ps)} | {cell(cold, 'ndcg@10', 'cold', ps)} | "
            f"{cell(warm, 'ndcg@10', 'warm', ps)} |"
        )
    return "\n".join(lines)
