"""ContentKNN: items scored by the text similarity of their descriptions to the user's history items.

Each item's text (title, genres, year, categories, attribute ids: ``recgen.data.text.item_texts``) is embedded by
all-MiniLM-L6-v2 (L2-normalised); a user's score for item j is the sum over the last ``max_history`` history
items i of cos(e_i, e_j), computed as (sum of e_i) . e_j. No interaction is needed to score an item, so it ranks
items no one has interacted with (``scores_unseen_items``): the content-only baseline of the cold-start protocol
(``--protocol item-cold-start``), as in ColdLLM's and LLM4IDRec's comparisons. It knows no collaborative signal,
so on warm items it is far below the collaborative models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recgen.config import check
from recgen.data.dataset import Dataset
from recgen.models.base import Recommender


@dataclass(frozen=True, kw_only=True)
class ContentKNNConfig:
    max_history: int = 50  # the most recent history items that vote
    encoder: str = "all-MiniLM-L6-v2"  # a sentence-transformers folder or a packaged name (recgen.data.text)
    seed: int = 0  # unused (deterministic); shared field

    def validate(self) -> None:
        check(self.max_history >= 1, f"max_history must be >= 1, got {self.max_history}")


class ContentKNN(Recommender):
    name = "contentknn"
    Config = ContentKNNConfig
    scores_unseen_items = True
    selects_on_valid = False  # nothing is chosen on validation

    def _fit(self, dataset: Dataset, valid) -> None:
        from recgen.data.text import TextEncoder, item_texts

        emb = TextEncoder(self.config.encoder).encode(item_texts(dataset))
        self.emb_ = np.vstack([np.zeros((1, emb.shape[1]), np.float32), emb]).astype(np.float32)

    def _score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        e = torch.from_numpy(self.emb_)
        q = torch.stack([e[torch.as_tensor(np.asarray(h[-self.config.max_history :], dtype=np.int64))].sum(0)
                         for h in histories])  # fmt: skip
        return q @ e.T

    def _state(self) -> dict[str, np.ndarray]:
        return {"embeddings": self.emb_}

    def _load_state(self, tensors: dict[str, np.ndarray]) -> None:
        self.emb_ = tensors["embeddings"].astype(np.float32)
