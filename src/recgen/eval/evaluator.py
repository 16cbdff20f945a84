"""Full-ranking evaluation: one harness for every model.

For each evaluated user the model scores the **whole** catalogue given the user's chronological history; items
in the history are excluded by default; each target's rank is its position in the (score desc, item id asc)
order, which is exactly the order of the lists ``recommend`` returns. Per-user values are gathered first and
averaged once at the end, so the numbers are identical at any batch size.

Sampled-negative metrics (rank of the target among N random unseen items) are computed only when asked for,
and every such key starts with ``sampled{N}_`` so it can never pass for a full-ranking number.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recgen.data.split import EvalSet
from recgen.errors import ConfigError
from recgen.eval.metrics import average_popularity, coverage, gini, ranking_metrics_from_ranks
from recgen.ops.topk import merge_topk, stable_topk, target_ranks
from recgen.ops.world import world

DEFAULT_KS = (5, 10, 20)


@dataclass
class EvalResult:
    """Mean metrics, the per-user values behind them, and how long it took."""

    metrics: dict[str, float]
    per_user: dict[str, np.ndarray] = field(repr=False)
    n_users: int = 0
    seconds: float = 0.0

    @property
    def users_per_second(self) -> float:
        return self.n_users / self.seconds if self.seconds > 0 else float("inf")

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]


def _padded_targets(es: EvalSet, rows: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    counts = es.target_indptr[rows + 1] - es.target_indptr[rows]
    t = np.full((len(rows), max(int(counts.max()), 1)), -1, dtype=np.int64)
    for j, r in enumerate(rows):
        tg = es.targets(r)
        t[j, : len(tg)] = tg
    return torch.from_numpy(t), counts


def evaluate(
    model: Any,
    eval_set: EvalSet,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 512,
    exclude_seen: bool = True,
    item_counts: np.ndarray | None = None,
    sampled_negatives: int = 0,
    seed: int = 0,
    progress: bool = False,
    decode: dict[str, Any] | None = None,
    item_block: int = 0,
    sharded: bool = False,
) -> EvalResult:
    """Evaluate a fitted model on an EvalSet by full-catalogue ranking.

    Args:
        model: a fitted Recommender.
        eval_set: users, histories and targets (``split.valid`` or ``split.test``).
        ks: cut-offs for recall/hit/ndcg/precision and the beyond-accuracy metrics.
        batch_size: users scored at once (results do not depend on it).
        exclude_seen: mask history items (default, as in every published full-ranking protocol).
        item_counts: training popularity per dense item for ``avg_pop@K`` (default: the model's).
        sampled_negatives: if > 0, also report labelled sampled metrics with that many negatives.
        seed: seed of the negative sampler.
        progress: show a progress bar.
        decode: decode-time field changes (the model's ``decode_fields``) for this evaluation only; the fitted
            model is not changed.
        item_block: if > 0 and the model streams its scores (``streams_scores``), rank the catalogue this many
            items at a time: top-k merged block by block and each target's rank counted block by block, so memory
            is (batch x item_block), not (batch x catalogue). Same metrics as whole rows (scores that tie within
            float rounding aside: each block is its own product); other models rank whole rows.
        sharded: in a ``torch.distributed`` run (torchrun), every process ranks every N-th batch of users and the
            per-user ranks and top-k lists are gathered, so each process returns the metrics of all users (every
            process must call it). The same figures as one process; ``seconds`` is this process's wall time.

    Returns:
        EvalResult with ``recall@K``, ``hit@K``, ``ndcg@K``, ``precision@K``, ``mrr``, ``coverage@K``,
        ``avg_pop@K``, ``gini@K`` (and ``sampled{N}_*`` if asked).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ConfigError(f"cut-offs must be integers >= 1, got {list(ks)}")
    if sampled_negatives < 0:
        raise ConfigError(f"sampled_negatives must be >= 0, got {sampled_negatives}")
    if item_block < 0:
        raise ConfigError(f"item_block must be >= 0 (0 = whole rows), got {item_block}")
    stream = item_block > 0 and getattr(model, "streams_scores", False) and not decode
    if sharded and sampled_negatives and world()[1] > 1:
        raise ConfigError("sampled-negative metrics are drawn in one process; evaluate them unsharded")
    if stream and sampled_negatives:
        raise ConfigError("sampled-negative metrics need whole score rows; use item_block=0 with sampled_negatives")
    if decode:
        model.decode_config(decode)  # checked before any scoring
    n_items = model.n_items_
    miss = n_items + 2  # larger than any attainable rank (ranks run 1..n_items+1 incl. padding column)
    counts = model.item_counts_ if item_counts is None else item_counts
    kmax = max(ks)
    n = eval_set.n_users
    rank_rows: list[np.ndarray] = []
    n_targets = np.zeros(n, dtype=np.int64)
    top_items = np.zeros((n, kmax), dtype=np.int64)
    sampled_ranks = np.zeros(n, dtype=np.float64) if sampled_negatives else None
    rng = np.random.default_rng(seed)
    starts = range(0, n, batch_size)
    rank, size = world() if sharded else (0, 1)
    starts = my_starts = starts[rank::size]
    if progress:
        from recgen.progress import track

        starts = track(starts, description="evaluating", total=len(starts))
    t0 = time.perf_counter()
    max_t = int(np.max(np.diff(eval_set.target_indptr))) if n else 1
    for start in starts:
        rows = np.arange(start, min(start + batch_size, n))
        hists = eval_set.histories(rows)
        targets, cnt = _padded_targets(eval_set, rows)
        if stream:
            ranks, idx = _ranks_streamed(
                model.score_stream(eval_set.user_ids[rows], hists, eval_set.history_times(rows)),
                hists, targets, kmax, exclude_seen, item_block,
            )  # fmt: skip
        else:
            scores = model.score_masked(
                eval_set.user_ids[rows],
                hists,
                exclude_seen=exclude_seen,
                timestamps=eval_set.history_times(rows),
                decode=decode,
            )
            ranks = target_ranks(scores, targets).numpy()
            vals, idx = stable_topk(scores, kmax)
            idx = idx.numpy()
            idx[~torch.isfinite(vals).numpy()] = 0
            if sampled_ranks is not None:
                sampled_ranks[rows] = _sampled_rank(scores, targets, hists, sampled_negatives, rng)
        ranks[ranks > n_items] = miss  # padding slots and excluded targets: never reached
        full = np.full((len(rows), max_t), miss, dtype=np.int64)
        full[:, : ranks.shape[1]] = ranks
        rank_rows.append(full)
        n_targets[rows] = cnt
        top_items[rows, : idx.shape[1]] = idx
    if size > 1:  # every process's batches, back in batch order
        mine = list(range(rank, len(range(0, n, batch_size)), size))
        own = np.concatenate([np.arange(s, min(s + batch_size, n)) for s in my_starts]) if len(my_starts) else []
        part = (mine, rank_rows, n_targets[own], top_items[own], None if sampled_ranks is None else sampled_ranks[own])
        parts: list[Any] = [None] * size
        torch.distributed.all_gather_object(parts, part)
        by_batch = {}
        for batches, rr, nt, ti, sr in parts:
            offset = 0
            for i, block in zip(batches, rr, strict=True):
                rows = np.arange(i * batch_size, min((i + 1) * batch_size, n))
                n_targets[rows] = nt[offset : offset + len(rows)]
                top_items[rows] = ti[offset : offset + len(rows)]
                if sampled_ranks is not None:
                    sampled_ranks[rows] = sr[offset : offset + len(rows)]
                by_batch[i] = block
                offset += len(rows)
        rank_rows = [by_batch[i] for i in sorted(by_batch)]
    seconds = time.perf_counter() - t0
    ranks_all = np.concatenate(rank_rows) if rank_rows else np.zeros((0, 1), np.int64)
    per_user = ranking_metrics_from_ranks(ranks_all, np.maximum(n_targets, 1), ks, miss)
    metrics = {name: float(v.mean()) if len(v) else 0.0 for name, v in per_user.items()}
    for k in ks:
        metrics[f"coverage@{k}"] = coverage(top_items[:, :k], n_items)
        metrics[f"avg_pop@{k}"] = average_popularity(top_items[:, :k], counts)
        metrics[f"gini@{k}"] = gini(top_items[:, :k], n_items)
    if sampled_ranks is not None:
        tag = f"sampled{sampled_negatives}_"
        for k in ks:
            metrics[f"{tag}hit@{k}"] = float((sampled_ranks <= k).mean())
            metrics[f"{tag}ndcg@{k}"] = float(np.where(sampled_ranks <= k, 1 / np.log2(sampled_ranks + 1), 0).mean())
        metrics[f"{tag}mrr"] = float((1.0 / sampled_ranks).mean())
    metrics["n_users"] = float(n)
    metrics["targets_excluded_as_seen"] = float(((ranks_all == miss).sum(1) - (ranks_all.shape[1] - n_targets)).sum())
    return EvalResult(metrics=metrics, per_user=per_user, n_users=n, seconds=seconds)


def _ranks_streamed(
    stream: Any, hists: list[np.ndarray], targets: torch.Tensor, kmax: int, exclude_seen: bool, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Target ranks (B, T) and top-``kmax`` items (B, kmax; 0 where fewer rank) of one batch of users, from their
    scores made ``block`` items at a time. A target's rank counts, block by block, the items scoring above it and
    the lower-id items tying with it (``target_ranks``' order); its own score comes from ``stream.at``."""
    n = stream.n_cols - 1
    b, n_t = targets.shape
    valid = targets >= 0
    st = stream.at(targets.clamp(min=0)).to(torch.float64)  # (B, T)
    lengths = [len(h) for h in hists]
    hrows = np.repeat(np.arange(b), lengths)
    hcols = np.concatenate([np.asarray(h, dtype=np.int64) for h in hists]) if sum(lengths) else np.zeros(0, np.int64)
    dead = ~valid | (targets == 0) | torch.isneginf(st)  # padding slots, the padding item, -inf scores: no rank
    if exclude_seen and len(hcols):  # a target in its own history is excluded, as in whole-row ranking
        seen = set(zip(hrows.tolist(), hcols.tolist(), strict=True))
        for r, j in zip(*np.nonzero(valid.numpy()), strict=True):
            dead[r, j] |= (int(r), int(targets[r, j])) in seen
    above = torch.zeros((b, n_t), dtype=torch.long)
    top_v = torch.zeros((b, 0), dtype=torch.float64)
    top_i = torch.zeros((b, 0), dtype=torch.long)
    for lo in range(0, stream.n_cols, block):
        hi = min(lo + block, stream.n_cols)
        s = stream.block(lo, hi).to(torch.float64)
        if lo == 0:
            s[:, 0] = -torch.inf
        if exclude_seen and len(hcols):
            inb = (hcols >= lo) & (hcols < hi)
            s[torch.from_numpy(hrows[inb]), torch.from_numpy(hcols[inb] - lo)] = -torch.inf
        cols = torch.arange(lo, hi)
        for j in range(n_t):
            t, sj = targets[:, j], st[:, j : j + 1]
            count = (s > sj).sum(1) + ((s == sj) & (cols[None, :] < t[:, None])).sum(1)
            own = (t >= lo) & (t < hi)  # the target itself is in this block: never counted above itself
            if own.any():
                r = own.nonzero().squeeze(1)
                count[r] -= (s[r, t[r] - lo] > sj[r, 0]).long()
            above[:, j] += count
        v, i = stable_topk(s, kmax)
        top_v, top_i = merge_topk(top_v, top_i, v, i + lo, kmax)
    ranks = above + 1
    ranks[dead] = n + 1
    top_i[~torch.isfinite(top_v)] = 0
    return ranks.numpy(), top_i.numpy()


def _sampled_rank(
    scores: torch.Tensor, targets: torch.Tensor, hists: list[np.ndarray], n_neg: int, rng: np.random.Generator
) -> np.ndarray:
    """Rank of each user's first target among ``n_neg`` uniformly drawn unseen non-target items (1-based)."""
    n_cols = scores.shape[1]
    out = np.zeros(len(hists), dtype=np.float64)
    for b, h in enumerate(hists):
        t = int(targets[b, 0])
        banned = np.zeros(n_cols, dtype=bool)
        banned[0] = True
        banned[h] = True
        banned[targets[b][targets[b] >= 0].numpy()] = True
        pool = np.flatnonzero(~banned)
        neg = rng.choice(pool, size=min(n_neg, len(pool)), replace=False)
        st = scores[b, t].item()
        sn = scores[b, torch.from_numpy(neg)].numpy()
        out[b] = 1 + np.sum(sn > st) + np.sum((sn == st) & (neg < t))
    return out
