"""Model selection on validation: keep the best state by a validation metric, stop after ``patience`` evals."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EarlyStopping:
    """Track a validation metric (higher is better) and the state at its best value."""

    patience: int = 5
    metric: str = "ndcg@10"
    best_value: float = float("-inf")
    best_epoch: int = -1
    best_state: Any = None
    history: list[dict[str, float]] = field(default_factory=list)
    _bad: int = 0

    def step(self, epoch: int, value: float, state: Any) -> bool:
        """Record one evaluation; returns True when training should stop."""
        self.history.append({"epoch": epoch, self.metric: value})
        if value > self.best_value:
            self.best_value, self.best_epoch = value, epoch
            self.best_state = copy.deepcopy(state)
            self._bad = 0
        else:
            self._bad += 1
        return self._bad >= self.patience
