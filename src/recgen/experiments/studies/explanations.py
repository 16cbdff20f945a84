"""``recgen explain study``: grounded explanations measured on seeded (user, top-1 item) pairs.

For ``n_pairs`` seeded test users of the leave-one-out split, each model's top-1 item is explained
(``recgen.tasks.explain``), by template and, with ``--llm``, by the LLM. Per row:

- **groundedness**: the share of claims that hold: every cited item is in the user's training history, every
  shared attribute value holds for the item and for a cited item (checked in the catalogue), and the shown text
  names no other title and no attribute value the item lacks (must be 1.0);
- **faithfulness**: the item's score drop when the cited items are removed from the history together, against
  removing as many random history items (seeded): mean drops and the share of pairs where the cited drop is larger;
- **personalisation**: for items explained to several users, distinct explanations per user;
- **USR** (unique sentence ratio, P5 / PETER) and **feature coverage** (the share of the catalogue's attribute
  values that appear in some explanation, PETER's FCR).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recgen.data.loaders import load_dataset
from recgen.data.split import leave_one_out
from recgen.errors import ConfigError
from recgen.experiments.results import git_commit, provenance, write_json
from recgen.models.registry import create_model
from recgen.tasks.catalog import Catalog
from recgen.tasks.explain import Explainer


def _score(model: Any, user: int, history: np.ndarray, item: int) -> float:
    with torch.no_grad():
        return float(model.score(np.asarray([user]), [np.asarray(history, dtype=np.int64)])[0, item])


def measure(explainer: Explainer, pairs: list[tuple[str, str]], seed: int = 0) -> dict[str, Any]:
    m, cat = explainer.model, explainer.catalog
    rng = np.random.default_rng(seed)
    claims = held = 0
    drops_cited, drops_random, wins = [], [], []
    texts, by_item, values_used = [], {}, set()
    withheld = 0
    for user, item in pairs:
        e = explainer.explain(user, item)
        withheld += e.withheld
        u = int(m.users_.index(user))
        hist = m.train_history(u)
        d = int(m.items_.index(item))
        own = set(map(int, hist))
        for c in e.cited:
            claims += 1
            held += int(cat.dense(c["item_id"]) in own)
        cited_dense = [cat.dense(c["item_id"]) for c in e.cited]
        for attr, vals in e.shared.items():
            for v in vals:
                claims += 1
                if attr == "decade":
                    dec = int(v[:-1])
                    held += int(
                        cat.year[d] // 10 * 10 == dec and any(cat.year[c] // 10 * 10 == dec for c in cited_dense)
                    )
                else:
                    held += int(cat.holds(d, attr, v) and any(cat.holds(c, attr, v) for c in cited_dense))
        claims += 1  # the sentence shown
        held += int(explainer.grounded(e.text, d, cited_dense) if e.source == "llm" else True)
        if e.cited:
            full = _score(m, u, hist, d)
            keep = ~np.isin(hist, cited_dense)
            drop_c = full - _score(m, u, hist[keep], d)
            n = int((~keep).sum())
            pick = rng.choice(len(hist), n, replace=False)
            drop_r = full - _score(m, u, np.delete(hist, pick), d)
            drops_cited.append(drop_c)
            drops_random.append(drop_r)
            wins.append(drop_c > drop_r)
        texts.append(e.text)
        by_item.setdefault(item, []).append(e.text)
        low = " " + re.sub(r"[^0-9a-z]+", " ", e.text.lower()) + " "
        for attr in cat.words:
            values_used.update((attr, v) for v in cat.display[attr] if f" {re.sub(r'[^0-9a-z]+', ' ', v)} " in low)
    shared_items = [v for v in by_item.values() if len(v) > 1]
    all_values = sum(len(cat.display[a]) for a in cat.words)
    return {
        "pairs": len(pairs),
        "groundedness": held / claims if claims else 1.0,
        "claims": claims,
        "explained_with_citations": len(wins),
        "faithfulness_drop_cited": float(np.mean(drops_cited)) if drops_cited else None,
        "faithfulness_drop_random": float(np.mean(drops_random)) if drops_random else None,
        "faithfulness_win_rate": float(np.mean(wins)) if wins else None,
        "personalisation": float(np.mean([len(set(v)) / len(v) for v in shared_items])) if shared_items else None,
        "items_explained_to_several_users": len(shared_items),
        "usr": len(set(texts)) / len(texts) if texts else 0.0,
        "feature_coverage": len(values_used) / all_values if all_values else None,
        "llm_generations_withheld": withheld,
        "examples": texts[:3],
    }


def run_explain_study(
    dataset: str,
    *,
    models: Sequence[str] = ("ease", "sasrec"),
    n_pairs: int = 500,
    llm: str | None = None,
    sets: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    out_dir: str = "benchmarks/results/tasks",
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    if n_pairs < 1 or not models:
        raise ConfigError(f"--pairs must be >= 1 and --models non-empty, got {n_pairs} and {list(models)}")
    commit = git_commit()
    ds = load_dataset(dataset, **(data or {}))
    split = leave_one_out(ds)
    rows_idx = np.sort(np.random.default_rng(0).choice(len(split.test), min(n_pairs, len(split.test)), replace=False))
    users = [str(u) for u in ds.users.external(split.test.user_ids[rows_idx])]
    backend = None
    if llm is not None:
        from recgen.llm import load_llm

        backend = load_llm(llm)
    rows = []
    for name in models:
        per = {k.split(".", 1)[1]: v for k, v in (sets or {}).items() if k.startswith(f"{name}.")}
        model = create_model(name, **per).fit(split.train, valid=split.valid)
        catalog = Catalog.from_model(model)
        pairs = [(u, str(r.item_ids[0])) for u, r in zip(users, model.recommend_batch(users, 1), strict=True)]
        for source in ["template"] + (["llm"] if backend is not None else []):
            t0 = time.perf_counter()
            ex = Explainer(model, llm=backend if source == "llm" else None, catalog=catalog)
            row = {"model": name, "source": source, **measure(ex, pairs), "seconds": time.perf_counter() - t0}
            rows.append(row)
            log(f"{name} / {source}: groundedness {row['groundedness']:.3f}, faithfulness win "
                f"{row['faithfulness_win_rate'] or 0:.3f} (drop {row['faithfulness_drop_cited'] or 0:.4f} vs random "
                f"{row['faithfulness_drop_random'] or 0:.4f}), USR {row['usr']:.3f}, coverage "
                f"{row['feature_coverage'] or 0:.3f}, withheld {row['llm_generations_withheld']}")  # fmt: skip
    result = {
        "schema": "recgen-task/1",
        "task": "explanations",
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "protocol": {**split.protocol, "description": split.describe(), "pairs": len(users), "seed": 0},
        "llm": backend.info() if backend is not None else None,
        "rows": rows,
        **provenance(commit, command),
    }
    if backend is not None:
        backend.close()
    tag = "-".join(models) + ("__llm" if backend is not None else "")
    path = Path(out_dir) / f"{ds.name}__explanations__{tag}__p{len(users)}.json"
    result["_path"] = str(write_json(result, path))
    return result
