"""Splits: leave-one-out, global temporal and random ratio, item and user cold start, each recorded as a named
protocol.

Every split assigns each interaction a role (train / valid / test) and builds two evaluation sets:
validation (history = the user's training items, targets = validation items) and test (history = training +
validation items, targets = test items). Histories are chronological: a stable sort by timestamp, equal
timestamps keeping the source file's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recgen.data.dataset import Dataset
from recgen.errors import ConfigError, DataError

TRAIN, VALID, TEST = 0, 1, 2
DROPPED = 3  # in no part (the item cold-start protocol's interactions with cold items)
ORDER_RULE = "stable sort by timestamp; equal timestamps keep the source file's order"
# the cold-start protocols' defaults (a results file names a split that differs from them: see result_filename)
ITEM_COLD_FRAC = 0.15
USER_COLD_FRAC = 0.2
USER_COLD_MAX_TRAIN = 5


@dataclass
class EvalSet:
    """Users to evaluate, each with a chronological history and a set of target items (CSR layout).

    Attributes:
        user_ids: (U,) dense user ids.
        history_indptr: (U+1,) offsets into ``history_items``.
        history_items: chronological history items of every user, concatenated.
        target_indptr: (U+1,) offsets into ``target_items``.
        target_items: target items of every user, concatenated (chronological).
        history_timestamps: timestamps aligned with ``history_items`` (for time-aware models), or None.
    """

    user_ids: np.ndarray
    history_indptr: np.ndarray
    history_items: np.ndarray
    target_indptr: np.ndarray
    target_items: np.ndarray
    history_timestamps: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def __len__(self) -> int:
        return self.n_users

    def history(self, i: int) -> np.ndarray:
        return self.history_items[self.history_indptr[i] : self.history_indptr[i + 1]]

    def targets(self, i: int) -> np.ndarray:
        return self.target_items[self.target_indptr[i] : self.target_indptr[i + 1]]

    def histories(self, rows: np.ndarray | slice) -> list[np.ndarray]:
        idx = np.arange(self.n_users)[rows]
        return [self.history(i) for i in idx]

    def history_times(self, rows: np.ndarray | slice) -> list[np.ndarray] | None:
        if self.history_timestamps is None:
            return None
        idx = np.arange(self.n_users)[rows]
        return [self.history_timestamps[self.history_indptr[i] : self.history_indptr[i + 1]] for i in idx]

    def select(self, rows: np.ndarray) -> EvalSet:
        """A sub-set of users (e.g. a sample for quick validation)."""
        rows = np.asarray(rows)
        h = [self.history(i) for i in rows]
        t = [self.targets(i) for i in rows]
        return EvalSet(
            user_ids=self.user_ids[rows],
            history_indptr=np.r_[0, np.cumsum([len(x) for x in h])].astype(np.int64),
            history_items=np.concatenate(h) if h else np.zeros(0, np.int64),
            target_indptr=np.r_[0, np.cumsum([len(x) for x in t])].astype(np.int64),
            target_items=np.concatenate(t) if t else np.zeros(0, np.int64),
            history_timestamps=None
            if self.history_timestamps is None
            else np.concatenate(self.history_times(rows) or [np.zeros(0)]),
        )


@dataclass
class Split:
    """Train interactions plus validation and test evaluation sets, with the protocol that made them."""

    train: Dataset
    valid: EvalSet
    test: EvalSet
    protocol: dict[str, Any] = field(default_factory=dict)
    # named parts of test reported on their own beside it (the cold-start protocols: cold and warm test users)
    test_parts: dict[str, EvalSet] = field(default_factory=dict)

    def describe(self) -> str:
        """One line naming the protocol (printed beside every result)."""
        p = self.protocol
        parts = [p.get("name", "?")]
        for key in ("valid_frac", "test_frac", "cold_frac", "max_train", "seed", "eval_users"):
            if key in p:
                parts.append(f"{key}={p[key]}")
        parts.append(f"order: {p.get('order', ORDER_RULE)}")
        parts.append(f"full ranking over {p.get('n_items', '?')} items")
        return "; ".join(parts)


def _eval_set(
    ds: Dataset, order: np.ndarray, roles: np.ndarray, history_roles: tuple[int, ...], target_role: int
) -> tuple[EvalSet, int]:
    """Build an EvalSet from rows in chronological order (grouped by user) and their roles."""
    users = ds.user_ids[order]
    items = ds.item_ids[order]
    r = roles[order]
    hist_mask = np.isin(r, history_roles)
    tgt_mask = r == target_role
    n_hist = np.bincount(users[hist_mask], minlength=ds.users.size)
    n_tgt = np.bincount(users[tgt_mask], minlength=ds.users.size)
    eligible = (n_hist > 0) & (n_tgt > 0)
    eligible[0] = False
    user_ids = np.flatnonzero(eligible)
    keep_h = hist_mask & eligible[users]
    keep_t = tgt_mask & eligible[users]
    es = EvalSet(
        user_ids=user_ids.astype(np.int64),
        history_indptr=np.r_[0, np.cumsum(n_hist[user_ids])].astype(np.int64),
        history_items=items[keep_h],
        target_indptr=np.r_[0, np.cumsum(n_tgt[user_ids])].astype(np.int64),
        target_items=items[keep_t],
        history_timestamps=ds.timestamps[order][keep_h],
    )
    skipped = int(((n_tgt > 0) & (n_hist == 0)).sum())  # users with targets but no history
    return es, skipped


def _from_roles(ds: Dataset, roles: np.ndarray, protocol: dict[str, Any]) -> Split:
    order = ds.chronological_order()
    valid, skip_v = _eval_set(ds, order, roles, (TRAIN,), VALID)
    test, skip_t = _eval_set(ds, order, roles, (TRAIN, VALID), TEST)
    train = ds.subset(roles == TRAIN, meta={"split": protocol.get("name")})
    protocol = {
        **protocol,
        "order": ORDER_RULE,
        "n_users": ds.n_users,
        "n_items": ds.n_items,
        "n_train": int((roles == TRAIN).sum()),
        "n_valid_users": valid.n_users,
        "n_test_users": test.n_users,
        "skipped_cold_valid_users": skip_v,
        "skipped_cold_test_users": skip_t,
        "timestamp_source": ds.meta.get("timestamp_source", "unknown"),
        "dataset_fingerprint": ds.fingerprint(),
    }
    return Split(train=train, valid=valid, test=test, protocol=protocol)


def _positions(ds: Dataset, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows in ``order`` (grouped by user): position within the user and the user's length."""
    users = ds.user_ids[order]
    lengths = np.bincount(users, minlength=ds.users.size)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    pos = np.arange(len(order)) - starts[users]
    return pos, lengths[users]


def _last_two_roles(ds: Dataset, min_len: int) -> np.ndarray:
    """Roles of leave-one-out: per user with at least ``min_len`` rows, the last one tests, the one before
    validates; every other row trains."""
    if min_len < 3:
        raise ConfigError(f"min_len must be >= 3 (one train, one valid, one test item), got {min_len}")
    order = ds.chronological_order()
    pos, length = _positions(ds, order)
    roles = np.full(ds.n_interactions, TRAIN, dtype=np.int8)
    evaluated = length >= min_len
    roles[order[evaluated & (pos == length - 1)]] = TEST
    roles[order[evaluated & (pos == length - 2)]] = VALID
    return roles


def leave_one_out(ds: Dataset, *, min_len: int = 3) -> Split:
    """Per user: last item = test, second last = validation, the rest = training.

    Users with fewer than ``min_len`` interactions keep all of them in training (not evaluated).
    """
    roles = _last_two_roles(ds, min_len)
    return _from_roles(
        ds,
        roles,
        {
            "name": "leave-one-out",
            "min_len": min_len,
            "users_train_only": int((np.bincount(ds.user_ids)[1:] < min_len).sum()),
        },
    )


def temporal_split(ds: Dataset, *, valid_frac: float = 0.1, test_frac: float = 0.1) -> Split:
    """Global temporal split: the earliest interactions train, the next ``valid_frac`` validate, the last
    ``test_frac`` test (cut on the global stable time order)."""
    _check_fracs(valid_frac, test_frac)
    if ds.meta.get("timestamp_source") == "position":
        raise ConfigError(
            f"dataset {ds.name!r} has no real timestamps (only positions within each user), so a global "
            f"temporal split is meaningless; use leave-one-out or ratio"
        )
    order = np.argsort(ds.timestamps, kind="stable")
    n = ds.n_interactions
    n_test = int(round(n * test_frac))
    n_valid = int(round(n * valid_frac))
    roles = np.full(n, TRAIN, dtype=np.int8)
    roles[order[n - n_test :]] = TEST
    roles[order[n - n_test - n_valid : n - n_test]] = VALID
    return _from_roles(ds, roles, {"name": "temporal", "valid_frac": valid_frac, "test_frac": test_frac})


def _cut_per_user(ds: Dataset, order: np.ndarray, valid_frac: float, test_frac: float) -> np.ndarray:
    """Roles for rows in ``order`` (grouped by user): each user's last ``test_frac`` rows test, the ``valid_frac``
    before them validate. Counts round half up, then are trimmed so every user keeps one training row."""
    pos, length = _positions(ds, order)
    n_test = np.minimum(np.floor(length * test_frac + 0.5).astype(np.int64), length - 1)
    n_valid = np.minimum(np.floor(length * valid_frac + 0.5).astype(np.int64), length - 1 - n_test)
    roles = np.full(ds.n_interactions, TRAIN, dtype=np.int8)
    roles[order[pos >= length - n_test]] = TEST
    roles[order[(pos >= length - n_test - n_valid) & (pos < length - n_test)]] = VALID
    return roles


def ratio_split(ds: Dataset, *, valid_frac: float = 0.1, test_frac: float = 0.1, seed: int = 0) -> Split:
    """Random ratio split per user: each user's interactions are shuffled (seeded) and cut by the fractions.

    Every user keeps at least one training interaction.
    """
    _check_fracs(valid_frac, test_frac)
    rng = np.random.default_rng(seed)
    keys = rng.random(ds.n_interactions)
    order = np.lexsort((keys, ds.user_ids))
    roles = _cut_per_user(ds, order, valid_frac, test_frac)
    return _from_roles(ds, roles, {"name": "ratio", "valid_frac": valid_frac, "test_frac": test_frac, "seed": seed})


def user_temporal_split(ds: Dataset, *, valid_frac: float = 0.1, test_frac: float = 0.2) -> Split:
    """Chronological ratio split per user: each user's last ``test_frac`` interactions test, the ``valid_frac``
    before them validate, the rest train (stable time order; every user keeps at least one training item).

    The DiffRec paper splits by global time 7:1:2; on datasets that only carry each user's order (Yelp, Amazon
    in the S3-Rec/P5 files) this per-user cut is the closest honest equivalent, and it is named as such.
    """
    _check_fracs(valid_frac, test_frac)
    roles = _cut_per_user(ds, ds.chronological_order(), valid_frac, test_frac)
    return _from_roles(ds, roles, {"name": "user-temporal", "valid_frac": valid_frac, "test_frac": test_frac})


def item_cold_start(ds: Dataset, *, cold_frac: float = ITEM_COLD_FRAC, seed: int = 0, min_len: int = 3) -> Split:
    """Item cold start: a seeded ``cold_frac`` of the items is new. Every interaction with a cold item is removed
    from training and from every history; per user, the last interaction is test and the one before validation
    (as leave-one-out, over the rows that remain plus the targets). Test is reported whole and in two parts:
    ``cold`` (users whose test item is a cold item) and ``warm``. Only models that score items from content
    (``scores_unseen_items``) can rank a cold item above chance; the others are measured as they are and say so.
    """
    if not 0.0 < cold_frac < 1.0:
        raise ConfigError(f"cold_frac must be in (0, 1), got {cold_frac}")
    rng = np.random.default_rng(seed)
    n_cold = max(1, int(round(ds.n_items * cold_frac)))
    cold = np.zeros(ds.items.size, dtype=bool)
    cold[rng.choice(np.arange(1, ds.items.size), n_cold, replace=False)] = True
    roles = _last_two_roles(ds, min_len)
    dropped = (roles == TRAIN) & cold[ds.item_ids]
    roles[dropped] = DROPPED
    split = _from_roles(ds, roles, {
        "name": "item-cold-start", "cold_frac": cold_frac, "seed": seed, "min_len": min_len,
        "cold_items": int(n_cold), "dropped_train_interactions": int(dropped.sum()),
    })  # fmt: skip
    test = split.test
    first = np.asarray([test.targets(i)[0] for i in range(test.n_users)], dtype=np.int64)
    is_cold = cold[first]
    split.test_parts = {"cold": test.select(np.flatnonzero(is_cold)), "warm": test.select(np.flatnonzero(~is_cold))}
    split.protocol.update(cold_test_users=int(is_cold.sum()), warm_test_users=int((~is_cold).sum()))
    split.cold_items = np.flatnonzero(cold)
    return split


def user_cold_start(
    ds: Dataset,
    *,
    cold_frac: float = USER_COLD_FRAC,
    max_train: int = USER_COLD_MAX_TRAIN,
    seed: int = 0,
    min_len: int = 3,
) -> Split:
    """User cold start: a seeded ``cold_frac`` of the evaluated users is new, seen only at the start of their
    history: their first ``max_train`` interactions train (fewer if the user has fewer than ``max_train + 2``), the
    next one validates, the one after it tests, and the rest of theirs is in no part. Every other user is split as
    leave-one-out. Test is reported whole and in two parts: ``cold`` (test users with at most ``max_train``
    training interactions: the chosen ones and any whose whole training history is that short) and ``warm``.
    """
    if not 0.0 < cold_frac < 1.0:
        raise ConfigError(f"cold_frac must be in (0, 1), got {cold_frac}")
    if not isinstance(max_train, int | np.integer) or max_train < 1:
        raise ConfigError(f"max_train must be an integer >= 1, got {max_train!r}")
    if min_len < 3:
        raise ConfigError(f"min_len must be >= 3 (one train, one valid, one test item), got {min_len}")
    order = ds.chronological_order()
    pos, length = _positions(ds, order)
    counts = np.bincount(ds.user_ids, minlength=ds.users.size)
    candidates = np.flatnonzero(counts >= min_len)
    rng = np.random.default_rng(seed)
    chosen = np.zeros(ds.users.size, dtype=bool)
    chosen[rng.choice(candidates, max(1, int(round(len(candidates) * cold_frac))), replace=False)] = True
    users = ds.user_ids[order]
    evaluated = length >= min_len
    # the position of the validation row: max_train for a chosen user (fewer if short), length - 2 otherwise
    cut = np.where(chosen[users], np.minimum(max_train, length - 2), length - 2)
    roles = np.full(ds.n_interactions, TRAIN, dtype=np.int8)
    roles[order[evaluated & (pos == cut + 1)]] = TEST
    roles[order[evaluated & (pos == cut)]] = VALID
    roles[order[evaluated & (pos > cut + 1)]] = DROPPED
    split = _from_roles(ds, roles, {
        "name": "user-cold-start", "cold_frac": cold_frac, "max_train": int(max_train), "seed": seed,
        "min_len": min_len, "chosen_users": int(chosen.sum()),
        "dropped_interactions": int((roles == DROPPED).sum()),
    })  # fmt: skip
    n_train = np.bincount(ds.user_ids[roles == TRAIN], minlength=ds.users.size)
    test = split.test
    is_cold = n_train[test.user_ids] <= max_train
    split.test_parts = {"cold": test.select(np.flatnonzero(is_cold)), "warm": test.select(np.flatnonzero(~is_cold))}
    split.protocol.update(cold_test_users=int(is_cold.sum()), warm_test_users=int((~is_cold).sum()))
    return split


def _check_fracs(valid_frac: float, test_frac: float) -> None:
    for name, v in (("valid_frac", valid_frac), ("test_frac", test_frac)):
        if not 0.0 <= v < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {v}")
    if valid_frac + test_frac >= 1.0:
        raise ConfigError(f"valid_frac + test_frac must be < 1, got {valid_frac + test_frac}")


SPLITS = {
    "leave-one-out": leave_one_out,
    "loo": leave_one_out,
    "temporal": temporal_split,
    "ratio": ratio_split,
    "user-temporal": user_temporal_split,
    "item-cold-start": item_cold_start,
    "user-cold-start": user_cold_start,
}


def make_split(ds: Dataset, protocol: str = "leave-one-out", **kwargs: Any) -> Split:
    """Split by protocol name (``leave-one-out``/``loo``, ``temporal``, ``ratio``, ``user-temporal``,
    ``item-cold-start``, ``user-cold-start``)."""
    if protocol not in SPLITS:
        raise ConfigError(f"unknown split protocol {protocol!r}; use one of {', '.join(SPLITS)}")
    split = SPLITS[protocol](ds, **kwargs)
    if len(split.test) == 0 or len(split.valid) == 0:
        empty = "test" if len(split.test) == 0 else "validation"
        need = (
            "leave-one-out needs users with at least 3 interactions (one to train on, one to validate, one to test)"
            if protocol in ("leave-one-out", "loo")
            else f"the {protocol} split needs users with interactions on both sides of its cut"
        )
        raise DataError(
            f"the {protocol} split of {ds.name} has no {empty} users ({ds.n_users} users, {ds.n_interactions} "
            f"interactions): {need}; use more data or another --protocol"
        )
    return split
