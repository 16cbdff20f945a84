"""Metric functions. Ranking metrics work from target ranks (1-based positions in the full ranking), so one
pass over the catalogue gives every cut-off; rating and click metrics work from labels and predictions.

Conventions (RecBole's, stated so numbers are comparable):
- ``recall@K`` = hits in the top K / number of targets (= ``hit@K`` with one target, as in leave-one-out);
- ``ndcg@K`` = DCG@K / ideal DCG@K with binary gains and ideal DCG over min(#targets, K) positions;
- ``mrr`` = 1 / rank of the first target in the full ranking (no cut-off); a user whose every target was
  excluded scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


# --------------------------------------------------------------------------------------- ranking
def ranking_metrics_from_ranks(
    ranks: np.ndarray, n_targets: np.ndarray, ks: Sequence[int], miss_rank: int
) -> dict[str, np.ndarray]:
    """Per-user ranking metrics.

    Args:
        ranks: (U, T) 1-based ranks of each user's targets; padding slots and excluded targets hold
            ``miss_rank``.
        n_targets: (U,) number of targets per user (>= 1).
        ks: cut-offs.
        miss_rank: the rank value that means "never recommended" (n_items + 1).

    Returns:
        dict of metric name -> (U,) float64 array.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    n_targets = np.asarray(n_targets, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hit = ranks <= k
        gains = np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0).sum(1)
        ideal = np.array([np.sum(1.0 / np.log2(np.arange(2, min(int(t), k) + 2))) for t in n_targets])
        out[f"recall@{k}"] = hit.sum(1) / n_targets
        out[f"hit@{k}"] = hit.any(1).astype(np.float64)
        out[f"ndcg@{k}"] = gains / ideal
        out[f"precision@{k}"] = hit.sum(1) / k
    first = ranks.min(1) if ranks.shape[1] else np.full(len(ranks), float(miss_rank))
    out["mrr"] = np.where(first >= miss_rank, 0.0, 1.0 / first)
    return out


# ------------------------------------------------------------------------------- beyond accuracy
def coverage(rec_items: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list. ``rec_items``: (U, K) dense ids, 0 = empty."""
    items = np.unique(rec_items[rec_items > 0])
    return float(len(items) / max(n_items, 1))


def average_popularity(rec_items: np.ndarray, item_counts: np.ndarray) -> float:
    """Mean training interaction count of recommended items (lists averaged per user, then over users)."""
    valid = rec_items > 0
    pops = np.where(valid, item_counts[rec_items], 0.0)
    per_user = pops.sum(1) / np.maximum(valid.sum(1), 1)
    return float(per_user.mean()) if len(per_user) else 0.0


def gini(rec_items: np.ndarray, n_items: int) -> float:
    """Gini index of how often each catalogue item is recommended (0 = even exposure, 1 = one item only)."""
    counts = np.bincount(rec_items[rec_items > 0].ravel(), minlength=n_items + 1)[1:].astype(np.float64)
    if counts.sum() == 0:
        return 0.0
    x = np.sort(counts)
    n = len(x)
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * x) / (n * x.sum()))


# ----------------------------------------------------------------------------- rating and click
def _check_pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} values but y_pred has {y_pred.size}; they must align")
    if y_true.size == 0:
        raise ValueError("no values to score: y_true is empty")
    return y_true, y_pred


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = _check_pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = _check_pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    starts = np.r_[0, np.flatnonzero(np.diff(xs)) + 1]
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends + 1) / 2.0  # mean of positions start+1 .. end
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied scores counted half)."""
    labels, scores = _check_pair(labels, scores)
    pos = labels > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs both classes, got {n_pos} positives and {n_neg} negatives")
    r = _average_ranks(scores)
    return float((r[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _per_user_aucs(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> list[tuple[float, int]]:
    """(AUC, examples) of every user with both classes; users with one class are skipped."""
    labels, scores = _check_pair(labels, scores)
    users = np.asarray(users).ravel()
    if users.shape != labels.shape:
        raise ValueError(f"users has {users.size} values but labels has {labels.size}; they must align")
    order = np.argsort(users, kind="stable")
    us = users[order]
    bounds = np.r_[0, np.flatnonzero(us[1:] != us[:-1]) + 1, len(us)]
    out = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        idx = order[a:b]
        lab = labels[idx] > 0.5
        if lab.all() or not lab.any():
            continue
        out.append((auc(labels[idx], scores[idx]), b - a))
    return out


def gauc(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """Group AUC: per-user AUC weighted by the user's number of examples; users with one class are skipped."""
    per = _per_user_aucs(users, labels, scores)
    if not per:
        raise ValueError("GAUC needs at least one user with both positive and negative examples")
    return float(sum(a * n for a, n in per) / sum(n for _, n in per))


def uauc(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> tuple[float, int]:
    """User-averaged AUC (TALLRec's and CoLLM's UAUC): the plain mean of per-user AUCs over users with both
    classes, and how many such users there are."""
    per = _per_user_aucs(users, labels, scores)
    if not per:
        raise ValueError("UAUC needs at least one user with both a like and a dislike")
    return float(np.mean([a for a, _ in per])), len(per)


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-15) -> float:
    """Binary cross-entropy of predicted probabilities (clipped to [eps, 1-eps])."""
    labels, probs = _check_pair(labels, probs)
    if ((probs < 0) | (probs > 1)).any():
        raise ValueError("log_loss needs probabilities in [0, 1]; apply a sigmoid to raw scores first")
    p = np.clip(probs, eps, 1 - eps)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
