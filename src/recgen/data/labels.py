"""Explicit feedback kept through splitting: (user, item, like / dislike) pairs for click-through style
("will this user like this item?") evaluation, the task of TALLRec and CoLLM.

Labels come from the dataset's rating column: ``rating >= like_threshold`` is a like (4 on MovieLens' 1-5
stars). A 0/1 label column (clicked, liked) is loaded as the rating (``--columns ...,rating=clicked``) with
``like_threshold=1``; ``--label-column`` instead keeps only positive rows, which is what ranking wants.

The split is a global time cut over all rated interactions (the earliest ``1 - valid_frac - test_frac`` train,
then validation, then test), as time-ordered CTR studies split ML-1M; on data with positions only (no real
timestamps) each user's own order is cut instead, and the protocol says so. Ranking models are fitted on the
training interactions: by default the liked ones only (``fit_on="liked"``: a model of what people watch would
rank a watched-and-hated film high), or all (``fit_on="all"``). Validation and test keep both classes.
Validation pairs are for calibration and model choice, never for fitting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recgen.data.dataset import Dataset
from recgen.data.split import TEST, TRAIN, VALID, Split, _cut_per_user, _from_roles
from recgen.errors import ConfigError, DataError

FIT_ON = ("liked", "all")


@dataclass
class Pairs:
    """Labelled (user, item) pairs in dense ids, in time order."""

    users: np.ndarray
    items: np.ndarray
    labels: np.ndarray  # 1.0 like, 0.0 dislike
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def positive_rate(self) -> float:
        return float(self.labels.mean()) if len(self.labels) else float("nan")


@dataclass
class LabelledSplit:
    """What ranking models are fitted on (``fit``), the labelled training pairs (for counting baselines and
    models that learn from dislikes), and labelled validation and test pairs."""

    fit: Split
    train: Pairs
    valid: Pairs
    test: Pairs
    protocol: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        p = self.protocol
        return (
            f"{p['name']} ({p['cut']}); valid_frac={p['valid_frac']}; test_frac={p['test_frac']}; like = rating >= "
            f"{p['like_threshold']:g}; models fitted on {p['fit_on']} training interactions; test {len(self.test)} "
            f"pairs, {self.test.positive_rate():.3f} liked"
        )


def _pairs(ds: Dataset, rows: np.ndarray, liked: np.ndarray) -> Pairs:
    rows = rows[np.argsort(ds.timestamps[rows], kind="stable")]
    return Pairs(
        users=ds.user_ids[rows].astype(np.int64),
        items=ds.item_ids[rows].astype(np.int64),
        labels=liked[rows].astype(np.float64),
        timestamps=ds.timestamps[rows],
    )


def labelled_split(
    ds: Dataset,
    *,
    like_threshold: float = 4.0,
    valid_frac: float = 0.1,
    test_frac: float = 0.1,
    fit_on: str = "liked",
) -> LabelledSplit:
    """Cut ``ds`` by time into labelled train / validation / test pairs; see the module docstring."""
    if ds.ratings is None:
        raise DataError(
            f"dataset {ds.name!r} has no ratings or labels, so there is no like / dislike to predict; load one with "
            f"a rating column, or a 0/1 label column as the rating (--columns ...,rating=COL) with --like-threshold 1"
        )
    if fit_on not in FIT_ON:
        raise ConfigError(f"fit_on must be one of {', '.join(FIT_ON)}, got {fit_on!r}")
    if not (0 < valid_frac < 1 and 0 < test_frac < 1 and valid_frac + test_frac < 1):
        raise ConfigError(
            f"valid_frac and test_frac must be in (0, 1) with a sum below 1, got {valid_frac}, {test_frac}"
        )
    liked = ds.ratings >= like_threshold
    if liked.all() or not liked.any():
        raise DataError(
            f"every rating of {ds.name!r} is {'a like' if liked.all() else 'a dislike'} at like_threshold="
            f"{like_threshold:g}; pick a threshold between its lowest and highest rating "
            f"({ds.ratings.min():g}..{ds.ratings.max():g})"
        )
    n = ds.n_interactions
    if ds.meta.get("timestamp_source") == "position":
        roles = _cut_per_user(ds, ds.chronological_order(), valid_frac, test_frac)
        cut = "each user's own order (the data has no real timestamps)"
    else:
        order = np.argsort(ds.timestamps, kind="stable")
        n_test, n_valid = int(round(n * test_frac)), int(round(n * valid_frac))
        roles = np.full(n, TRAIN, dtype=np.int8)
        roles[order[n - n_test :]] = TEST
        roles[order[n - n_test - n_valid : n - n_test]] = VALID
        cut = "global time order"
    keep = liked if fit_on == "liked" else np.ones(n, dtype=bool)
    fit_rows = np.flatnonzero(keep)
    fit_ds = ds.subset(fit_rows)
    protocol = {
        "name": "labelled-temporal",
        "cut": cut,
        "valid_frac": valid_frac,
        "test_frac": test_frac,
        "like_threshold": like_threshold,
        "fit_on": fit_on,
    }
    fit = _from_roles(fit_ds, roles[fit_rows], protocol)
    idx = np.arange(n)
    return LabelledSplit(
        fit=fit,
        train=_pairs(ds, idx[roles == TRAIN], liked),
        valid=_pairs(ds, idx[roles == VALID], liked),
        test=_pairs(ds, idx[roles == TEST], liked),
        protocol={
            **protocol,
            "n_train_pairs": int((roles == TRAIN).sum()),
            "n_valid_pairs": int((roles == VALID).sum()),
            "n_test_pairs": int((roles == TEST).sum()),
            "dataset_fingerprint": ds.fingerprint(),
        },  # fmt: skip
    )
