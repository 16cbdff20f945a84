"""L2-regularised logistic regression by Newton steps (a few features, many rows): the simulated users' grounded
decider and Platt calibration of scores both fit one."""

from __future__ import annotations

import numpy as np


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """Weights (features..., bias) of an L2-regularised logistic regression (Newton steps; the bias is free)."""
    x = np.c_[x, np.ones(len(x))]
    w = np.zeros(x.shape[1])
    reg = l2 * np.diag(np.r_[np.ones(len(w) - 1), 0.0]) + 1e-9 * np.eye(len(w))
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        step = np.linalg.solve((x * (p * (1 - p))[:, None]).T @ x + reg, x.T @ (p - y) + reg @ w)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w
