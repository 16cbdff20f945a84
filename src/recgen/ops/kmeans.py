"""Seeded k-means (k-means++ initialisation, Lloyd iterations) in torch.

Written here instead of taking scikit-learn's because the core package does not depend on scikit-learn, and
the users of it (L-DiffRec's item clustering, residual quantisers) need only this much: dense float inputs,
a seed, and empty clusters re-seeded from the points farthest from their centre.
"""

from __future__ import annotations

import torch

from recgen.errors import ConfigError


def kmeans(
    x: torch.Tensor, k: int, *, iters: int = 50, seed: int = 0, tol: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster the rows of ``x`` (n, d) into ``k`` groups. Returns (centres (k, d), labels (n,))."""
    if x.ndim != 2:
        raise ConfigError(f"kmeans expects a 2-d tensor (n, d), got shape {tuple(x.shape)}")
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ConfigError(f"kmeans needs 1 <= k <= number of points, got k={k} for {n} points")
    x = x.double()
    gen = torch.Generator().manual_seed(seed)
    # k-means++ seeding
    centres = [x[torch.randint(n, (1,), generator=gen)].squeeze(0)]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct points than k: pick any
            idx = torch.randint(n, (1,), generator=gen)
        else:
            idx = torch.multinomial(d2 / total, 1, generator=gen)
        centres.append(x[idx].squeeze(0))
        d2 = torch.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = torch.stack(centres)  # (k, d)
    labels = torch.zeros(n, dtype=torch.long)
    prev = float("inf")
    for _ in range(iters):
        dist = torch.cdist(x, c) ** 2  # (n, k)
        best, labels = dist.min(1)
        inertia = float(best.sum())
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(c).index_add_(0, labels, x)
        empty = counts == 0
        c = sums / counts.clamp(min=1)[:, None]
        if empty.any():  # re-seed empty clusters with the worst-served points
            far = torch.argsort(best, descending=True)[: int(empty.sum())]
            c[empty] = x[far]
        if prev - inertia <= tol * max(prev, 1e-12):
            break
        prev = inertia
    dist = torch.cdist(x, c) ** 2
    labels = dist.argmin(1)
    return c, labels
