"""``recgen explain personalise``: personalised item text on seeded (user, recommended item) pairs.

For each pair, the item's generic description and the LLM's rewrite for the user (``recgen.tasks.personalize``).
Factuality: invented attribute values per rewrite and the share withheld. Alignment (all-MiniLM-L6-v2, cosine):
the rewrite's similarity to the user's profile text, against the generic description's, and against another
user's rewrite of the same item (the same items, each rewritten for two users).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recgen.data.loaders import load_dataset
from recgen.data.split import leave_one_out
from recgen.data.text import TextEncoder
from recgen.errors import ConfigError
from recgen.experiments.results import git_commit, provenance, write_json
from recgen.models.registry import create_model
from recgen.tasks.catalog import Catalog
from recgen.tasks.personalize import personalise, profile_text


def run_personal_text_study(
    dataset: str,
    *,
    n_items: int = 20,
    model: str = "ease",
    llm: str | None = None,
    sets: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    out_dir: str = "benchmarks/results/tasks",
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``n_items`` items, each the top-1 of one seeded user and rewritten for that user and one other user."""
    if n_items < 1:
        raise ConfigError(f"--items must be >= 1, got {n_items}")
    from recgen.llm import load_llm

    commit = git_commit()
    ds = load_dataset(dataset, **(data or {}))
    split = leave_one_out(ds)
    rec = create_model(model, **(sets or {})).fit(split.train)
    catalog = Catalog.from_model(rec)
    backend = load_llm(llm)
    rng = np.random.default_rng(0)
    users = [str(u) for u in ds.users.external(split.test.user_ids)]
    chosen = rng.choice(len(users), 2 * n_items, replace=False)
    pairs = []
    for a, b in zip(chosen[:n_items], chosen[n_items:], strict=True):
        item = str(rec.recommend(users[a], 1).item_ids[0])
        pairs.append((users[a], users[b], catalog.dense(item)))
    t0 = time.perf_counter()
    rows = []
    for ua, ub, d in pairs:
        liked = {}
        for u in (ua, ub):
            liked[u] = [int(x) for x in rec.train_history(int(rec.users_.index(u)))]
        pa, pb = personalise(catalog, d, liked[ua], backend), personalise(catalog, d, liked[ub], backend)
        rows.append({"user": ua, "other_user": ub, "item": catalog.ids[d], "title": catalog.titles[d],
                     "profile": profile_text(catalog, liked[ua]), "other_profile": profile_text(catalog, liked[ub]),
                     "generic": pa.generic, "text": pa.text, "rewrite": pa.rewrite, "invented": pa.invented,
                     "withheld": pa.withheld, "other_text": pb.text, "other_withheld": pb.withheld,
                     "other_invented": pb.invented, "other_rewrite": pb.rewrite})  # fmt: skip
    enc = TextEncoder()
    written = [r for r in rows if r["rewrite"] and r["other_rewrite"]]
    summary = {
        "pairs": len(rows),
        "rewrites_shown": sum(not r["withheld"] for r in rows) + sum(not r["other_withheld"] for r in rows),
        "rewrites": 2 * len(rows),
        "withheld_rate": float(np.mean([r["withheld"] for r in rows] + [r["other_withheld"] for r in rows])),
        "invented_per_rewrite": float(np.mean([r["invented"] for r in rows] + [r["other_invented"] for r in rows])),
        "seconds": time.perf_counter() - t0,
        "aligned_pairs": len(written),
    }
    if written:  # alignment of what the LLM wrote (shown or not): own rewrite vs generic vs the other user's
        enc_of = lambda key: enc.encode([r[key] for r in written])  # noqa: E731
        prof, own, generic, other = enc_of("profile"), enc_of("rewrite"), enc_of("generic"), enc_of("other_rewrite")
        summary["sim_rewrite_to_profile"] = float((own * prof).sum(axis=1).mean())
        summary["sim_generic_to_profile"] = float((generic * prof).sum(axis=1).mean())
        summary["sim_other_users_rewrite_to_profile"] = float((other * prof).sum(axis=1).mean())
    get = lambda key: summary.get(key) or 0.0  # noqa: E731
    log(f"{summary['rewrites_shown']}/{summary['rewrites']} rewrites shown; invented "
        f"{summary['invented_per_rewrite']:.2f}/rewrite; similarity to the profile: own "
        f"{get('sim_rewrite_to_profile'):.3f}, generic {get('sim_generic_to_profile'):.3f}, another user's "
        f"{get('sim_other_users_rewrite_to_profile'):.3f}")  # fmt: skip
    result = {
        "schema": "recgen-task/1",
        "task": "personal-text",
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "protocol": {"model": model, "items": n_items, "seed": 0, "split": split.protocol["name"]},
        "llm": backend.info(),
        "summary": summary,
        "rows": rows,
        **provenance(commit, command),
    }
    backend.close()
    path = Path(out_dir) / f"{ds.name}__personal-text__n{n_items}.json"
    result["_path"] = str(write_json(result, path))
    return result
