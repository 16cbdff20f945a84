"""``recgen retrain``: a new model version from the dataset plus the feedback stored by the service, kept only if it
is not worse.

The stored events of the chosen kinds (clicks and purchases, ratings of at least ``min_rating``, views when asked
for) are appended to the dataset's interactions with their timestamps. On the leave-one-out split of that data,
the challenger (the active version's recipe, or another model or config) and the champion (the active version's
recipe) are fitted on the same training part, each choosing on validation as the harness does; the challenger
becomes the active version only if its validation NDCG@10 is not below the champion's. Refitting the champion's
recipe on the new data, rather than scoring the served model as it is, keeps the comparison fair: the served
model trained on interactions that are now validation targets.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from recgen.config import to_dict
from recgen.data.dataset import Dataset, from_columns
from recgen.data.loaders import load_dataset
from recgen.data.split import leave_one_out
from recgen.errors import DataError
from recgen.eval.evaluator import evaluate
from recgen.models.registry import create_model
from recgen.serve.registry import ModelRegistry
from recgen.serve.store import Store


def with_feedback(ds: Dataset, store: Store, *, kinds: tuple[str, ...], min_rating: float) -> tuple[Dataset, int]:
    """``ds`` with the stored events appended as interactions (items unknown to ``ds`` included); the count."""
    events = [e for e in store.events(kinds=kinds) if e.event != "rate" or (e.value or 0.0) >= min_rating]
    if not events:
        return ds, 0
    users = np.concatenate([ds.users.external(ds.user_ids), np.array([e.user_id for e in events], dtype=object)])
    items = np.concatenate([ds.items.external(ds.item_ids), np.array([e.item_id for e in events], dtype=object)])
    ts = np.concatenate([ds.timestamps, np.array([e.timestamp for e in events])])
    meta = {**ds.meta, "feedback_events": len(events)}
    out = from_columns(users, items, ts, item_table=ds.item_table, user_table=ds.user_table, name=ds.name, meta=meta)
    return out, len(events)


def retrain(
    registry: ModelRegistry,
    dataset: str,
    store: Store,
    *,
    model: str | None = None,
    sets: dict[str, Any] | None = None,
    data_dir: str | None = None,
    kinds: tuple[str, ...] = ("click", "purchase", "rate"),
    min_rating: float = 4.0,
    log=print,
) -> dict[str, Any]:
    """Fit, compare on validation and activate (see the module docstring); returns what happened."""
    if registry.single:
        raise DataError(f"{registry.path} is a single model folder; retrain into a registry folder (versions/)")
    active, current = registry.current()
    ds, n_events = with_feedback(load_dataset(dataset, data_dir=data_dir), store, kinds=kinds, min_rating=min_rating)
    split = leave_one_out(ds)
    log(f"{ds.name}: {ds.n_interactions} interactions ({n_events} from stored feedback); {split.describe()}")
    champion_cfg = to_dict(current.config)
    name = model or current.name
    challenger_cfg = {**(champion_cfg if name == current.name else {}), **(sets or {})}

    def fit(model_name: str, cfg: dict[str, Any]) -> tuple[Any, float, float]:
        t0 = time.perf_counter()
        m = create_model(model_name, **cfg).fit(split.train, valid=split.valid)
        return m, evaluate(m, split.valid, ks=(10,)).metrics["ndcg@10"], time.perf_counter() - t0

    challenger, new_score, new_s = fit(name, challenger_cfg)
    log(f"challenger {name}: validation NDCG@10 {new_score:.4f} ({new_s:.1f} s)")
    _, old_score, old_s = fit(current.name, champion_cfg)
    log(f"champion {current.name} (recipe of {active}): validation NDCG@10 {old_score:.4f} ({old_s:.1f} s)")
    info = {
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "feedback_events": n_events,
        "protocol": split.describe(),
        "model": name,
        "config": {k: v for k, v in dataclasses.asdict(challenger.config).items()},
        "valid_ndcg@10": new_score,
        "champion": {"version": active, "model": current.name, "valid_ndcg@10": old_score},
    }
    version = registry.add_version(challenger, info=info)
    activated = new_score >= old_score
    if activated:
        registry.activate(version)
    log(
        f"version {version}: " + ("activated" if activated else f"kept inactive (validation {new_score:.4f} < "
                                                              f"{old_score:.4f}); `activate` it by hand if wanted")
    )  # fmt: skip
    return {"version": version, "activated": activated, **info, "registry": str(Path(registry.path))}
