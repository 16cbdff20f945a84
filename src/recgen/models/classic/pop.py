"""Most-popular baseline: every user gets the items with the most training interactions.

Ties are broken by the lower dense item id (the order items first appear in the data), like every model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recgen.data.dataset import Dataset
from recgen.models.base import Recommender


@dataclass(frozen=True, kw_only=True)
class PopConfig:
    seed: int = 0  # unused (Pop is deterministic); kept so every model shares the field


class Pop(Recommender):
    name = "pop"
    Config = PopConfig

    def _fit(self, dataset: Dataset, valid) -> None:
        self.pop_ = self.item_counts_.astype(np.float32)

    def _score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(self.pop_).expand(len(user_ids), -1).clone()

    def _score_stream(self, user_ids, histories, timestamps):
        pop, b = torch.from_numpy(self.pop_), len(user_ids)
        return (lambda lo, hi: pop[lo:hi].expand(b, -1).clone()), (lambda items: pop[items])

    def _state(self) -> dict[str, np.ndarray]:
        return {"pop": self.pop_}

    def _load_state(self, tensors: dict[str, np.ndarray]) -> None:
        self.pop_ = tensors["pop"]
