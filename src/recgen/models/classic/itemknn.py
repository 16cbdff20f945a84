"""ItemKNN: item-based collaborative filtering with cosine similarity (Sarwar et al., WWW 2001).

sim(i, j) = |U_i & U_j| / (sqrt|U_i| sqrt|U_j| + shrink) on the binary user-item matrix; each item keeps its
``k`` most similar items (its neighbour row), and a user's score for item j is the sum of sim(i, j) over the
history items i whose neighbour rows hold j. This follows benfred/implicit's ItemItemRecommender (row-wise
top-k, score = history @ S); RecBole's ItemKNN is the same up to where the top-k is taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from recgen.config import check
from recgen.data.dataset import Dataset
from recgen.data.matrix import history_matrix, interaction_matrix
from recgen.memory import check_memory
from recgen.models.base import Recommender


@dataclass(frozen=True, kw_only=True)
class ItemKNNConfig:
    k: int = 100  # neighbours kept per item
    shrink: float = 0.0  # added to the cosine denominator (damps similarities from few co-occurrences)
    seed: int = 0  # unused (deterministic); shared field

    def validate(self) -> None:
        check(self.k >= 1, f"k must be >= 1, got {self.k}")
        check(self.shrink >= 0, f"shrink must be >= 0, got {self.shrink}")


def cosine_topk(x: sp.csr_matrix, k: int, shrink: float) -> sp.csr_matrix:
    """Row-wise top-k cosine item-item similarity (N+1, N+1), diagonal removed, float32."""
    co = (x.T @ x).tocsr().astype(np.float64)  # co-occurrence counts
    norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
    co.setdiag(0.0)
    co.eliminate_zeros()
    rows, cols = co.nonzero()
    co.data = co.data / (norms[rows] * norms[cols] + shrink)
    indptr, indices, data = [0], [], []
    for i in range(co.shape[0]):
        a, b = co.indptr[i], co.indptr[i + 1]
        d, c = co.data[a:b], co.indices[a:b]
        if len(d) > k:
            # top-k by (similarity desc, column asc): deterministic under ties
            keep = np.lexsort((c, -d))[:k]
            d, c = d[keep], c[keep]
        order = np.argsort(c)
        indices.append(c[order])
        data.append(d[order])
        indptr.append(indptr[-1] + len(c))
    return sp.csr_matrix(
        (np.concatenate(data).astype(np.float32), np.concatenate(indices), np.asarray(indptr)),
        shape=co.shape,
    )


class ItemKNN(Recommender):
    name = "itemknn"
    Config = ItemKNNConfig

    @staticmethod
    def memory_needed(dataset: Dataset) -> float:
        """Peak bytes of fitting: the item co-occurrence matrix X^T X in CSR (8-byte value and 4-byte index per
        entry) three times over (product, float64 copy, scaled), with at most min(sum of squared user degrees,
        (N+1)^2) entries."""
        degrees = np.bincount(dataset.user_ids).astype(np.float64)
        entries = min(float((degrees**2).sum()), float(dataset.n_items + 1) ** 2)
        return 36.0 * entries

    def _fit(self, dataset: Dataset, valid) -> None:
        check_memory(
            self.memory_needed(dataset),
            f"ItemKNN on {dataset.n_items:,} items (the item co-occurrence matrix)",
            "lower the data's size (e.g. a k-core filter or fewer heavy users)",
        )
        self.sim_ = cosine_topk(interaction_matrix(dataset), self.config.k, self.config.shrink)

    def _score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        xh = history_matrix(histories, self.n_items_ + 1)
        return torch.from_numpy((xh @ self.sim_).toarray())

    def _score_stream(self, user_ids, histories, timestamps):
        # the product is sparse (history items x their k neighbours): made once, densified a block at a time
        prod = (history_matrix(histories, self.n_items_ + 1) @ self.sim_).tocsc()

        def at(items: torch.Tensor) -> torch.Tensor:
            rows = np.repeat(np.arange(len(items)), items.shape[1])
            cols = np.array(items.reshape(-1).numpy())  # a writeable copy: scipy's fancy indexing needs one
            return torch.from_numpy(np.asarray(prod[rows, cols]).reshape(items.shape))

        return (lambda lo, hi: torch.from_numpy(prod[:, lo:hi].toarray())), at

    def _state(self) -> dict[str, np.ndarray]:
        s = self.sim_
        return {
            "sim_indptr": s.indptr.astype(np.int64),
            "sim_indices": s.indices.astype(np.int64),
            "sim_data": s.data,
        }

    def _load_state(self, tensors: dict[str, np.ndarray]) -> None:
        n = self.n_items_ + 1
        self.sim_ = sp.csr_matrix((tensors["sim_data"], tensors["sim_indices"], tensors["sim_indptr"]), shape=(n, n))
