"""Item tokenizers: item -> tuple of codes and back (groundwork for generative retrieval over semantic IDs).

- ``IDTokenizer``: one token per item (the baseline of the TIGER comparison).
- ``RQKMeansTokenizer``: residual k-means (no training): level 1 clusters the item embeddings, each next level
  clusters the residuals left by the previous centroids; an item's code is its centroid index at each level.

Collisions (two items with the same codes) are resolved as TIGER does, with one extra level that numbers the
items sharing a prefix 0, 1, 2, ... (so every item gets a unique tuple and decoding is exact). Each tokenizer
reports codebook usage (perplexity per level), the collision rate before resolution and the reconstruction error
(mean squared distance between an embedding and the sum of its centroids).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from recgen.errors import ConfigError, DataError
from recgen.ops.kmeans import kmeans


@dataclass
class TokenizerStats:
    perplexity: list[float] = field(default_factory=list)  # exp(entropy) of code usage per level
    collision_rate: float = 0.0  # share of items whose codes (before the extra level) are not unique
    reconstruction_mse: float = 0.0
    extra_level_size: int = 1  # largest number of items sharing one code prefix


class ItemTokenizer:
    """Maps dense item ids 1..n to unique code tuples (``codes_`` is (n + 1, levels); row 0 = padding)."""

    codes_: np.ndarray
    stats_: TokenizerStats

    def _finish(self, base: np.ndarray) -> None:
        """Add the collision-resolving level and build the decode table."""
        n = base.shape[0]
        groups: dict[tuple[int, ...], int] = defaultdict(int)
        extra = np.zeros(n, dtype=np.int64)
        for i in range(n):
            key = tuple(int(v) for v in base[i])
            extra[i] = groups[key]
            groups[key] += 1
        collided = sum(c for c in groups.values() if c > 1)
        self.stats_.collision_rate = collided / max(n, 1)
        self.stats_.extra_level_size = max(groups.values()) if groups else 1
        codes = np.concatenate([base, extra[:, None]], axis=1)
        self.codes_ = np.concatenate([np.zeros((1, codes.shape[1]), dtype=np.int64), codes])
        self._decode = {tuple(int(v) for v in codes[i]): i + 1 for i in range(n)}

    @property
    def levels(self) -> int:
        return int(self.codes_.shape[1])

    def encode(self, item: int) -> tuple[int, ...]:
        if not 1 <= item < len(self.codes_):
            raise DataError(f"item {item} is not a dense item id in [1, {len(self.codes_) - 1}]")
        return tuple(int(v) for v in self.codes_[item])

    def decode(self, codes: tuple[int, ...]) -> int | None:
        """The item with exactly these codes, or None (an invalid identifier)."""
        return self._decode.get(tuple(int(v) for v in codes))


def _perplexity(labels: np.ndarray, k: int) -> float:
    p = np.bincount(labels, minlength=k) / max(len(labels), 1)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


class IDTokenizer(ItemTokenizer):
    def fit(self, n_items: int) -> IDTokenizer:
        if n_items < 1:
            raise DataError("IDTokenizer needs at least one item")
        self.stats_ = TokenizerStats(perplexity=[float(n_items)])
        self._finish(np.arange(n_items, dtype=np.int64)[:, None])
        return self


class RQKMeansTokenizer(ItemTokenizer):
    def __init__(self, levels: int = 3, codebook_size: int = 256, *, iters: int = 50, seed: int = 0) -> None:
        if levels < 1 or codebook_size < 2:
            raise ConfigError(f"need levels >= 1 and codebook_size >= 2, got {levels} and {codebook_size}")
        self.n_levels, self.k, self.iters, self.seed = levels, codebook_size, iters, seed

    def fit(self, embeddings: np.ndarray) -> RQKMeansTokenizer:
        """``embeddings`` (n_items, d): row i is dense item i + 1."""
        x = torch.as_tensor(np.asarray(embeddings), dtype=torch.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise DataError(f"embeddings must be (n_items >= 2, dim), got shape {tuple(x.shape)}")
        residual = x.clone()
        base = np.zeros((x.shape[0], self.n_levels), dtype=np.int64)
        self.centroids_ = []
        self.stats_ = TokenizerStats()
        for level in range(self.n_levels):
            k = min(self.k, residual.shape[0])
            centres, labels = kmeans(residual, k, iters=self.iters, seed=self.seed + level)
            base[:, level] = labels.numpy()
            self.centroids_.append(centres.numpy())
            residual = residual - centres[labels]
            self.stats_.perplexity.append(_perplexity(labels.numpy(), k))
        self.stats_.reconstruction_mse = float((residual**2).sum(1).mean())
        self._finish(base)
        return self
