"""Shared machinery for models that read a user's whole interaction vector (MultVAE, DiffRec, L-DiffRec).

Training rows are the users' binary training vectors x_u in {0, 1}^(N+1) (column 0 is padding and stays 0),
shuffled and batched; a subclass provides ``_build_net()``, ``_loss(x, gen)`` and ``_infer(net, x, histories)``.
Validation (NDCG@10 on the validation set, every ``eval_every`` epochs) chooses the epoch through the shared
trainer. At recommendation time the vector is built from the history given (for evaluation, train + earlier
held-out items), so a user unknown at training time is served from a history alone. Inference runs a float64
copy of the network, so rankings do not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recgen.config import check
from recgen.data.dataset import Dataset
from recgen.data.matrix import history_matrix, interaction_matrix
from recgen.models.training.netmodel import NetRecommender
from recgen.models.training.trainer import TrainerConfig


@dataclass(frozen=True, kw_only=True)
class UserVectorConfig(TrainerConfig):
    batch_size: int = 400  # users per step
    epochs: int = 200  # maximum epochs (early stopping on validation)
    eval_every: int = 5  # validate every N epochs
    patience: int = 4  # evaluations without improvement before stopping
    grad_clip: float = 0.0  # the reference implementations do not clip

    def validate(self) -> None:
        super().validate()
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")


class UserVectorRecommender(NetRecommender):
    def _build_net(self) -> torch.nn.Module:
        raise NotImplementedError

    def _prepare(self, dataset: Dataset) -> None:
        """Hook before the network is built (e.g. item clustering)."""

    def _loss(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def _infer(self, net: torch.nn.Module, x: torch.Tensor, histories: Sequence[np.ndarray], cfg: Any) -> torch.Tensor:
        """Scores (B, N + 1) from user vectors ``x``; ``cfg``: the config to read decode-time fields from."""
        raise NotImplementedError

    def _fit(self, dataset: Dataset, valid: Any) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        self._prepare(dataset)
        self.net_ = self._build_net()
        self._infer_net_ = None
        x = interaction_matrix(dataset, dtype=np.float32)
        x.data[:] = 1.0  # binary
        rows = np.flatnonzero(np.diff(x.indptr) > 0)  # users with training interactions
        n, bs = len(rows), cfg.batch_size
        self._gen = torch.Generator().manual_seed(cfg.seed + 1)

        def batches(epoch: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
            self._gen = gen  # the trainer owns the data generator (resumable); losses draw noise from it too
            perm = torch.randperm(n, generator=gen).numpy()
            for s in range(0, n, bs):
                yield torch.from_numpy(x[rows[perm[s : s + bs]]].toarray())

        def loss_fn(batch: torch.Tensor) -> tuple[torch.Tensor, int]:
            return self._loss(batch, self._gen), batch.shape[0]

        self._train(
            batches=batches,
            loss_fn=loss_fn,
            valid=valid,
            steps_per_epoch=(n + bs - 1) // bs,
            flops_per_batch=lambda b: 6.0 * b.shape[0] * self._matmul_params(),
        )
        self.fitted_ = True
        self._after_fit(valid)

    def _after_fit(self, valid: Any) -> None:
        """Hook after training (e.g. choosing inference settings on validation)."""

    def _matmul_params(self) -> int:
        """Weights of the linear layers (the FLOP count of one sample's forward pass is twice this)."""
        return sum(m.weight.numel() for m in self.net_.modules() if isinstance(m, torch.nn.Linear))

    def non_embedding_parameters(self) -> int:
        return sum(p.numel() for p in self.net_.parameters())

    @torch.no_grad()
    def _score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray], decode: Any = None) -> torch.Tensor:
        x = torch.from_numpy(history_matrix(histories, self.n_items_ + 1, dtype=np.float64).toarray())
        x.clamp_(max=1.0)
        return self._infer(self._inference_net(), x, histories, decode or self.config)

    def _load_state(self, tensors: dict[str, np.ndarray]) -> None:
        self._set_net(self._build_net(), tensors)
