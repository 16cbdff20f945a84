"""Deterministic top-k and target ranks over score matrices.

Ties are broken by the lower dense item id, everywhere: ``stable_topk`` returns exactly the first k entries of a
stable descending sort, and ``target_ranks`` gives each target's position in that same order. So the metrics
the evaluator reports are the metrics of the lists ``recommend`` returns, at any batch size.
"""

from __future__ import annotations

import torch


def _count(mask: torch.Tensor) -> torch.Tensor:
    """True entries per row of a (B, N) mask, as int64. Summed in int32 (exact below 2**31 columns): on a CPU this
    is about twice as fast as ``mask.sum(1)`` or ``count_nonzero``, and these (B, N) passes are most of the
    evaluator's ranking time on a large catalogue."""
    return mask.sum(1, dtype=torch.int32).long()


def stable_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k per row of ``scores`` (B, N), ordered by (score desc, index asc).

    Returns:
        (values, indices), each (B, min(k, N)).
    """
    n = scores.shape[1]
    k = min(k, n)
    if k == 0:
        empty = scores.new_zeros((scores.shape[0], 0))
        return empty, empty.long()
    vals, idx = torch.topk(scores, k, dim=1, largest=True, sorted=False)  # (B, k), ties arbitrary
    # order the chosen k by (value desc, index asc): sort by index, then a stable sort by value
    o = torch.argsort(idx, dim=1)
    idx, vals = idx.gather(1, o), vals.gather(1, o)
    o = torch.sort(vals, dim=1, descending=True, stable=True).indices
    idx, vals = idx.gather(1, o), vals.gather(1, o)
    # rows where the k-th value is tied with values outside the chosen set: which tied items made it in was
    # arbitrary, so redo those rows with a full stable sort (rare except for models with many equal scores)
    kth = vals[:, -1:]
    ambiguous = _count(scores >= kth) > k
    if ambiguous.any():
        rows = ambiguous.nonzero().squeeze(1)
        sv, si = torch.sort(scores[rows], dim=1, descending=True, stable=True)
        vals[rows], idx[rows] = sv[:, :k], si[:, :k]
    return vals, idx


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each target in the (score desc, index asc) order of its row.

    Args:
        scores: (B, N) with excluded items at -inf.
        targets: (B, T) item indices, -1 = no target in that slot.

    Returns:
        (B, T) int64 ranks; ``N + 1`` for padding slots and for targets whose score is -inf (excluded items
        can never be recommended, so they count as misses).
    """
    b, n = scores.shape
    ranks = torch.full(targets.shape, n + 1, dtype=torch.long)
    for j in range(targets.shape[1]):
        t = targets[:, j]
        valid = t >= 0
        if not valid.any():
            continue
        rows = valid.nonzero().squeeze(1)
        s = scores if len(rows) == b else scores[rows]  # (R, N); no copy when every row has this target
        tt = t[rows]
        st = s.gather(1, tt[:, None])  # (R, 1)
        greater = _count(s > st)
        ties_before = torch.zeros_like(greater)
        tied = _count(s == st) > 1  # the target ties with another item: rare, so counted only where it does
        if tied.any():
            tr = tied.nonzero().squeeze(1)
            before = torch.arange(n)[None, :] < tt[tr, None]
            ties_before[tr] = _count((s[tr] == st[tr]) & before)
        r = greater + ties_before + 1
        r[torch.isinf(st.squeeze(1)) & (st.squeeze(1) < 0)] = n + 1
        ranks[rows, j] = r
    return ranks


def merge_topk(
    vals: torch.Tensor, idx: torch.Tensor, new_vals: torch.Tensor, new_idx: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-k of two ordered candidate lists (each by (score desc, index asc)), where every index of the second
    is above every index of the first (item blocks taken in order): a stable sort by score of the two, first
    before second, keeps (score desc, index asc), the order ``stable_topk`` gives over the whole row."""
    v, i = torch.cat([vals, new_vals], dim=1), torch.cat([idx, new_idx], dim=1)
    o = torch.sort(v, dim=1, descending=True, stable=True).indices[:, :k]
    return v.gather(1, o), i.gather(1, o)
