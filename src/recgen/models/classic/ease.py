"""EASE: Embarrassingly Shallow Autoencoder (Steck, WWW 2019, "Embarrassingly Shallow Autoencoders for Sparse Data").

Closed form: with the binary user-item matrix X and Gram matrix G = X^T X + l2 * I, P = G^-1 and
B_ij = -P_ij / P_jj, B_jj = 0. A user's scores are x_u B.

Where recgen differs from the paper's listing: the inverse is computed through a Cholesky factorisation
(G is symmetric positive definite) in float64 with torch's LAPACK, which costs half the flops of the generic
inverse; B is then stored in float32. Repeated (user, item) pairs count once. Histories given
at recommendation time (e.g. train + validation items at test time) are used as x_u directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recgen.config import check
from recgen.data.dataset import Dataset
from recgen.data.matrix import history_matrix, interaction_matrix
from recgen.memory import check_memory
from recgen.models.base import Recommender


@dataclass(frozen=True, kw_only=True)
class EASEConfig:
    l2: float = 500.0  # L2 regularisation lambda added to the Gram matrix diagonal
    seed: int = 0  # unused (closed form); shared field

    def validate(self) -> None:
        check(self.l2 > 0, f"l2 must be > 0, got {self.l2}")


def ease_weights(x, l2: float) -> np.ndarray:
    """The EASE item-item matrix B (n_items+1, n_items+1) in float64; row/column 0 (padding) stays 0."""
    g = torch.from_numpy((x.T @ x).toarray().astype(np.float64))  # (N+1, N+1)
    g.diagonal().add_(l2)
    # G is symmetric positive definite: invert through its Cholesky factor (half the flops of LU). torch's
    # LAPACK is used because scipy's bundled OpenBLAS potrf crashed (segfault) at n ~ 18k on our machines.
    chol, info = torch.linalg.cholesky_ex(g)
    del g
    if int(info) != 0:
        raise RuntimeError(f"EASE Gram matrix is not positive definite (cholesky info={int(info)}); increase l2")
    p = torch.cholesky_inverse(chol)  # (N+1, N+1), symmetric
    del chol
    p.div_(-p.diagonal().clone()[None, :])  # B_ij = -P_ij / P_jj
    p.fill_diagonal_(0.0)
    p[0, :] = 0.0
    p[:, 0] = 0.0
    return p.numpy()


class EASE(Recommender):
    name = "ease"
    Config = EASEConfig

    @staticmethod
    def memory_needed(n_items: int) -> float:
        """Peak bytes of fitting: two dense (N+1)^2 float64 matrices at once (the Gram matrix and its Cholesky
        factor, then the factor and the inverse), as measured (23,715 items: 9.0 GB estimated, 9.2 GB seen)."""
        return 16.0 * (n_items + 1) ** 2

    def _fit(self, dataset: Dataset, valid) -> None:
        check_memory(
            self.memory_needed(dataset.n_items),
            f"EASE on {dataset.n_items:,} items (a dense {dataset.n_items + 1:,}^2 Gram matrix and its inverse)",
            "use itemknn or a smaller catalogue (e.g. a k-core filter)",
        )
        x = interaction_matrix(dataset)
        # C order matters: scipy's sparse @ dense ravels its right operand, which copies an F-ordered matrix
        # (1.6 GB for 20k items) on every call; cholesky_inverse returns column-major storage
        self.weights_ = np.ascontiguousarray(ease_weights(x, self.config.l2), dtype=np.float32)

    def _score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        xh = history_matrix(histories, self.n_items_ + 1)
        return torch.from_numpy(np.asarray(xh @ self.weights_))

    def _state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_}

    def _load_state(self, tensors: dict[str, np.ndarray]) -> None:
        self.weights_ = tensors["weights"]
