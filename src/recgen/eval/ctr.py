"""Preference (click-through style) evaluation: how well a score separates the (user, item) pairs a user liked
from those they disliked, for any model that scores pairs, ranking models included.

- **AUC** over all test pairs; **UAUC**, the mean of per-user AUCs over users with both a like and a dislike in
  test (CoLLM's and TALLRec's user-averaged AUC); **GAUC**, the same weighted by each user's pairs.
- **Log-loss** of calibrated probabilities: a ranking model's raw scores have no probability scale, so a Platt
  map (logistic on the raw score) is fitted on the validation pairs and applied to test; the calibrated
  probability never changes AUC.
- Counting baselines from the labelled training pairs: the user's like-rate (the "history like-rate" of the
  TALLRec study; constant per user, so its UAUC is exactly 0.5), the item's like-rate, and both combined by a
  logistic regression fitted on the validation pairs.

A ranking model scores a pair from the user's **training** history (what it was fitted on), whatever the test
pair's time: the history is never extended with validation or test interactions, so nothing leaks, at the cost of
ignoring what the user did between the cut and the pair. Users with no training history get the model's
cold-start row (popularity).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recgen.data.labels import LabelledSplit, Pairs
from recgen.eval.metrics import auc, gauc, log_loss, uauc
from recgen.ops.logistic import fit_logistic


def pair_scores(model, pairs: Pairs, *, batch_size: int = 256) -> np.ndarray:
    """The model's raw score of each pair, from the user's training history (see the module docstring)."""
    out = np.empty(len(pairs), dtype=np.float64)
    users = np.unique(pairs.users)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        hists = [model.train_history(int(u)) for u in batch]
        ids = np.array([int(u) if len(h) else 0 for u, h in zip(batch, hists, strict=True)], dtype=np.int64)
        times = [model.train_times(int(u)) for u in batch]
        scores = model.score(ids, hists, times).double().numpy()
        row = {int(u): r for r, u in enumerate(batch)}
        mask = np.isin(pairs.users, batch)
        idx = np.flatnonzero(mask)
        rows = np.array([row[int(u)] for u in pairs.users[idx]], dtype=np.int64)
        items = np.clip(pairs.items[idx], 0, scores.shape[1] - 1)  # items unseen in training: padding column
        out[idx] = scores[rows, items]
    if not np.isfinite(out).all():  # e.g. -inf for an item a model cannot emit: below every finite score
        finite = out[np.isfinite(out)]
        out = np.nan_to_num(out, nan=0.0, neginf=(finite.min() - 1.0) if finite.size else -1.0,
                            posinf=(finite.max() + 1.0) if finite.size else 1.0)  # fmt: skip
    return out


def platt(valid_scores: np.ndarray, valid_labels: np.ndarray):
    """A map from raw scores to probabilities, fitted on validation pairs (scores standardised first)."""
    mu, sd = float(valid_scores.mean()), float(valid_scores.std()) or 1.0
    w = fit_logistic(((valid_scores - mu) / sd)[:, None], valid_labels, l2=1e-4)
    return lambda s: 1.0 / (1.0 + np.exp(-(w[0] * (s - mu) / sd + w[1])))


def ctr_metrics(pairs: Pairs, scores: np.ndarray, probs: np.ndarray | None = None) -> dict[str, Any]:
    u, n_users = uauc(pairs.users, pairs.labels, scores)
    out: dict[str, Any] = {
        "auc": auc(pairs.labels, scores),
        "uauc": u,
        "gauc": gauc(pairs.users, pairs.labels, scores),
        "uauc_users": n_users,
        "pairs": len(pairs),
    }
    if probs is not None:
        out["log_loss"] = log_loss(pairs.labels, probs)
    return out


def evaluate_scores(split: LabelledSplit, valid_scores: np.ndarray, test_scores: np.ndarray) -> dict[str, Any]:
    """Metrics of test scores, log-loss after the validation-fitted Platt map; validation AUC beside them."""
    calibrate = platt(valid_scores, split.valid.labels)
    row = ctr_metrics(split.test, test_scores, calibrate(test_scores))
    row["valid_auc"] = auc(split.valid.labels, valid_scores)
    return row


def _rates(keys: np.ndarray, labels: np.ndarray, size: int, prior: float, strength: float) -> np.ndarray:
    likes = np.bincount(keys, weights=labels, minlength=size)
    n = np.bincount(keys, minlength=size)
    return (likes + strength * prior) / (n + strength)


def counting_baselines(split: LabelledSplit, n_users: int, n_items: int, *, strength: float = 5.0) -> list[dict]:
    """Rows for the user like-rate, item like-rate and their validation-fitted combination."""
    tr = split.train
    prior = tr.positive_rate()
    user_rate = _rates(tr.users, tr.labels, n_users, prior, strength)
    item_rate = _rates(tr.items, tr.labels, n_items, prior, strength)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    rows = []
    for name, f in (("user like-rate", lambda p: user_rate[p.users]), ("item like-rate", lambda p: item_rate[p.items])):
        rows.append({"model": name, **evaluate_scores(split, f(split.valid), f(split.test))})
    feats = lambda p: np.c_[logit(user_rate[p.users]), logit(item_rate[p.items])]  # noqa: E731
    w = fit_logistic(feats(split.valid), split.valid.labels, l2=1e-4)
    score = lambda p: feats(p) @ w[:2] + w[2]  # noqa: E731
    rows.append({"model": "user + item like-rate", **evaluate_scores(split, score(split.valid), score(split.test)),
                 "note": "a logistic combination fitted on the validation pairs"})  # fmt: skip
    return rows
