"""Filters: k-core, rating threshold, duplicate handling. Each returns a new, compacted Dataset and records
what it did in ``dataset.meta["filters"]``."""

from __future__ import annotations

from typing import Literal

import numpy as np

from recgen.data.dataset import Dataset
from recgen.errors import ConfigError, DataError


def _record(ds: Dataset, step: dict) -> Dataset:
    ds.meta = {**ds.meta, "filters": [*ds.meta.get("filters", []), step]}
    return ds


def k_core(ds: Dataset, min_user: int = 5, min_item: int = 5, max_rounds: int = 100) -> Dataset:
    """Keep the largest subset where every user has >= ``min_user`` and every item >= ``min_item`` interactions.

    Iterates to a fixed point (removing items can push users below the bound and vice versa).
    """
    if min_user < 0 or min_item < 0:
        raise ConfigError(f"k-core bounds must be >= 0, got min_user={min_user}, min_item={min_item}")
    keep = np.ones(ds.n_interactions, dtype=bool)
    for _ in range(max_rounds):
        u_cnt = np.bincount(ds.user_ids[keep], minlength=ds.users.size)
        i_cnt = np.bincount(ds.item_ids[keep], minlength=ds.items.size)
        new_keep = keep & (u_cnt[ds.user_ids] >= min_user) & (i_cnt[ds.item_ids] >= min_item)
        if new_keep.sum() == keep.sum():
            break
        keep = new_keep
    if not keep.any():
        raise DataError(f"{min_user}/{min_item}-core filtering removed every interaction; lower the bounds")
    out = ds.subset(keep).compact()
    return _record(
        out,
        {
            "k_core": {"min_user": min_user, "min_item": min_item},
            "removed": int(ds.n_interactions - out.n_interactions),
        },
    )


def rating_threshold(ds: Dataset, threshold: float) -> Dataset:
    """Keep interactions with rating >= ``threshold`` (e.g. 4 to treat ratings of 4-5 as positive)."""
    if ds.ratings is None:
        raise DataError(
            f"dataset {ds.name!r} has no ratings, so a rating threshold of {threshold} cannot apply; drop the threshold"
        )
    keep = ds.ratings >= threshold
    if not keep.any():
        raise DataError(f"no rating is >= {threshold} (ratings range {ds.ratings.min()}..{ds.ratings.max()})")
    out = ds.subset(keep).compact()
    return _record(out, {"rating_threshold": threshold, "removed": int((~keep).sum())})


def deduplicate(ds: Dataset, keep: Literal["first", "last", "all"] = "first") -> Dataset:
    """Handle repeated (user, item) pairs: keep the first or the last occurrence in time, or all of them."""
    if keep not in ("first", "last", "all"):
        raise ConfigError(f"keep must be 'first', 'last' or 'all', got {keep!r}")
    if keep == "all":
        return ds
    order = ds.chronological_order()
    if keep == "last":
        order = order[::-1]
    pairs = ds.user_ids[order] * ds.items.size + ds.item_ids[order]
    _, first_pos = np.unique(pairs, return_index=True)
    rows = np.sort(order[first_pos])  # back to source order
    out = ds.subset(rows).compact()
    return _record(out, {"deduplicate": keep, "removed": int(ds.n_interactions - out.n_interactions)})
