"""Sparse helpers shared by the item-item models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from recgen.data.dataset import Dataset


def interaction_matrix(ds: Dataset, dtype=np.float64) -> sp.csr_matrix:
    """Binary user x item matrix (n_users+1, n_items+1); repeated pairs count once."""
    x = sp.csr_matrix(
        (np.ones(ds.n_interactions, dtype=dtype), (ds.user_ids, ds.item_ids)),
        shape=(ds.users.size, ds.items.size),
    )
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def history_matrix(histories: Sequence[np.ndarray], n_cols: int, dtype=np.float32) -> sp.csr_matrix:
    """Binary CSR (B, n_cols) of histories; each row is computed on its own, so products are batch-invariant."""
    indptr = np.r_[0, np.cumsum([len(np.unique(h)) for h in histories])].astype(np.int64)
    indices = np.concatenate([np.unique(h) for h in histories]) if histories else np.zeros(0, np.int64)
    data = np.ones(len(indices), dtype=dtype)
    return sp.csr_matrix((data, indices, indptr), shape=(len(histories), n_cols))


def svd_item_vectors(x: sp.spmatrix, dim: int, seed: int, power: float = 1.0) -> np.ndarray:
    """(n_items, k) item vectors ``V diag(s)^power`` from the truncated SVD of a (n_users+1, n_items+1) interaction
    matrix (column 0 = padding, dropped), k = ``dim``; a matrix too small for a rank-``dim`` truncated SVD gives its
    dense item columns instead. Used by L-DiffRec (item clustering, power 1) and TIGER (content-free item vectors
    for the codebooks, power 1/2)."""
    import scipy.sparse.linalg as spla

    m = x[:, 1:].astype(np.float64)
    k = max(1, min(dim, min(m.shape) - 1))
    if k >= min(m.shape) - 1 or min(m.shape) < 3:
        return m.T.toarray()
    _, s, vt = spla.svds(m, k=k, random_state=seed)
    return vt.T * s**power
