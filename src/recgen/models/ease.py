"""EASE: Embarrassingly Shallow Autoencoder (Steck, WWW 2019, "Embarrassingly Shallow Autoencoders for Sparse Data").

Closed form: with the binary user-item matrix X and Gram matrix G = X^T X + l2 * I, P = G^-1 and
B_ij = -P_ij / P_jj, B_jj = 0. A user's scores are x_u B.

Where recgen differs from the paper's listing: the inverse is computed through a Cholesky factorisation
(LAPACK potrf/potri; G is symmetric positive definite) in float64, which costs half the flops of the generic
inverse and no extra copy; B is then stored in float32. Repeated (user, item) pairs count once. Histories given
at recommendation time (e.g. train + validation items at test time) are used as x_u directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg.lapack as lapack
import torch

from recgen.config import check
from recgen.data.dataset import Dataset
from recgen.models._sparse import history_matrix, interaction_matrix
from recgen.models.base import Recommender


@dataclass(frozen=True, kw_only=True)
class EASEConfig:
    l2: float = 500.0  # L2 regularisation lambda added to the Gram matrix diagonal
    seed: int = 0  # unused (closed form); shared field

    def validate(self) -> None:
        check(self.l2 > 0, f"l2 must be > 0, got {self.l2}")


def ease_weights(x, l2: float) -> np.ndarray:
    """The EASE item-item matrix B (n_items+1, n_items+1) in float64; row/column 0 (padding) stays 0."""
    g = (x.T @ x).toarray().astype(np.float64)  # (N+1, N+1), C-contiguous
    g[np.diag_indices_from(g)] += l2
    # G is symmetric, so its transpose is the same matrix in Fortran order: LAPACK can then work in place
    # (no copy of an N x N matrix). potrf/potri fill the upper triangle of the F view = lower of the C view.
    c, info = lapack.dpotrf(g.T, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise RuntimeError(f"EASE Gram matrix is not positive definite (potrf info={info}); increase l2")
    pf, info = lapack.dpotri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise RuntimeError(f"EASE inverse failed (potri info={info}); increase l2")
    p = pf.T  # C view; its lower triangle holds P = G^-1
    _symmetrize_from_lower(p)
    diag = np.diag(p).copy()
    p /= -diag[None, :]  # B_ij = -P_ij / P_jj
    np.fill_diagonal(p, 0.0)
    p[0, :] = 0.0
    p[:, 0] = 0.0
    return p


def _symmetrize_from_lower(p: np.ndarray, block: int = 1024) -> None:
    """Copy the lower triangle onto the upper one, in place, block by block (no N x N temporaries)."""
    n = p.shape[0]
    for a in range(0, n, block):
        b = min(a + block, n)
        d = p[a:b, a:b]
        p[a:b, a:b] = np.tril(d) + np.tril(d, -1).T
        p[:a, a:b] = p[a:b, :a].T


class EASE(Recommender):
    name = "ease"
    Config = EASEConfig

    def _fit(self, dataset: Dataset, valid) -> None:
        x = interaction_matrix(dataset)
        self.weights_ = ease_weights(x, self.config.l2).astype(np.float32)

    def _score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        xh = history_matrix(histories, self.n_items_ + 1)
        return torch.from_numpy(np.asarray(xh @ self.weights_))

    def _state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_}

    def _load_state(self, tensors: dict[str, np.ndarray]) -> None:
        self.weights_ = tensors["weights"]
