"""Speed of the evaluator's ranking ops on a CPU: ``target_ranks`` + ``stable_topk`` as they count masks now
(int32 sums, ties counted only in rows that have them) against the int64 ``.sum()`` counting used up to commit
bd99780, on random float64 scores of Yelp's shape (512 users x 20,034 columns), one thread.

    PYTHONPATH=src python benchmarks/ranking_speed.py --out benchmarks/results/speed/ranking_cpu.json

Both variants alternate over ``--rounds``; each figure is the median per batch. Their outputs are checked equal.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from speedlib import save

from recgen.ops.topk import stable_topk, target_ranks


def ranks_as_before(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """target_ranks as it was: every count an int64 ``.sum()`` of a mask, ties counted in every row."""
    b, n = scores.shape
    ranks = torch.full(targets.shape, n + 1, dtype=torch.long)
    arange = torch.arange(n)
    for j in range(targets.shape[1]):
        t = targets[:, j]
        rows = (t >= 0).nonzero().squeeze(1)
        s, tt = scores[rows], t[rows]
        st = s.gather(1, tt[:, None])
        r = (s > st).sum(1) + ((s == st) & (arange[None, :] < tt[:, None])).sum(1) + 1
        r[torch.isinf(st.squeeze(1)) & (st.squeeze(1) < 0)] = n + 1
        ranks[rows, j] = r
    return ranks


def topk_as_before(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """stable_topk as it was: the tie check an int64 ``.sum()`` of a mask."""
    vals, idx = torch.topk(scores, k, dim=1, largest=True, sorted=False)
    o = torch.argsort(idx, dim=1)
    idx, vals = idx.gather(1, o), vals.gather(1, o)
    o = torch.sort(vals, dim=1, descending=True, stable=True).indices
    idx, vals = idx.gather(1, o), vals.gather(1, o)
    ambiguous = (scores >= vals[:, -1:]).sum(1) > k
    if ambiguous.any():
        rows = ambiguous.nonzero().squeeze(1)
        sv, si = torch.sort(scores[rows], dim=1, descending=True, stable=True)
        vals[rows], idx[rows] = sv[:, :k], si[:, :k]
    return vals, idx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=512)
    ap.add_argument("--items", type=int, default=20034)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(args.users, args.items, generator=g, dtype=torch.float64)
    scores[:, 0] = -torch.inf
    targets = torch.randint(1, args.items, (args.users, 1), generator=g)
    assert torch.equal(ranks_as_before(scores, targets), target_ranks(scores, targets))
    assert torch.equal(topk_as_before(scores, args.k)[1], stable_topk(scores, args.k)[1])
    variants = {
        "before": lambda: (ranks_as_before(scores, targets), topk_as_before(scores, args.k)),
        "now": lambda: (target_ranks(scores, targets), stable_topk(scores, args.k)),
    }
    times = {k: [] for k in variants}
    for _ in range(args.rounds):
        for label, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - t0)
    row = {f"{k}_ms_per_batch": 1000 * statistics.median(v) for k, v in times.items()}
    row["speedup"] = row["before_ms_per_batch"] / row["now_ms_per_batch"]
    print(f"before {row['before_ms_per_batch']:.0f} ms, now {row['now_ms_per_batch']:.0f} ms ({row['speedup']:.2f}x)")
    save("ranking_speed", args.out, shape=[args.users, args.items], **row)


if __name__ == "__main__":
    main()
