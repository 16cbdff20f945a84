"""BPR-MF: matrix factorisation trained with Bayesian Personalized Ranking (Rendle et al., UAI 2009).

x_ui = <p_u, q_i>; loss = -log sigmoid(x_ui - x_uj) for a training pair (u, i) and a uniformly sampled item j
the user has not interacted with, plus L2 on the embeddings in the batch. Optimised with Adam.

Where recgen differs from the paper: Adam instead of SGD (as RecBole and most reimplementations), run by the
shared ``recgen.models.training.Trainer`` (so a run keeps its checkpoints and resumes like every trained model);
the epoch is chosen on validation NDCG@10 when a validation set is given (evaluated every ``eval_every`` epochs,
stopping after ``patience`` evaluations without improvement) and the best epoch's weights are kept. A user
unknown at training time but given with a history (a session) is folded in as the mean of its history's item
vectors.
Scores are computed in float64 so that rankings do not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recgen.config import check
from recgen.data.dataset import Dataset
from recgen.models.training.netmodel import NetRecommender
from recgen.models.training.trainer import TrainerConfig


@dataclass(frozen=True, kw_only=True)
class BPRConfig(TrainerConfig):
    """BPR's fields; the optimisation fields (lr, epochs, patience, ...) come from TrainerConfig."""

    embedding_dim: int = 64  # size of user and item vectors
    epochs: int = 100  # maximum training epochs
    lr: float = 1e-3  # Adam learning rate
    batch_size: int = 4096  # training pairs per step
    reg: float = 1e-5  # L2 weight on the batch's embeddings
    grad_clip: float = 0.0  # no clipping (as the paper and RecBole)
    eval_every: int = 5  # validation every N epochs (when a validation set is given)
    patience: int = 4  # evaluations without improvement before stopping
    seed: int = 0  # seeds initialisation and negative sampling

    def validate(self) -> None:
        super().validate()
        check(self.embedding_dim >= 1, f"embedding_dim must be >= 1, got {self.embedding_dim}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.reg >= 0, f"reg must be >= 0, got {self.reg}")


class MF(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users + 1, dim)  # row 0: padding / unknown
        self.item = nn.Embedding(n_items + 1, dim)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)

    def forward(self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pu, qi, qj = self.user(u), self.item(i), self.item(j)  # (B, D) each
        x = (pu * (qi - qj)).sum(-1)  # (B,)
        l2 = pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()
        return x, l2


class BPR(NetRecommender):
    name = "bpr"
    Config = BPRConfig

    def _fit(self, dataset: Dataset, valid) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        self.net_ = MF(dataset.n_users, dataset.n_items, cfg.embedding_dim)
        n_cols = dataset.n_items + 1
        pairs = np.unique(dataset.user_ids * n_cols + dataset.item_ids)  # each (user, item) once
        users = torch.from_numpy(pairs // n_cols)
        items = torch.from_numpy(pairs % n_cols)
        seen = torch.from_numpy(pairs)

        def batches(epoch: int, gen: torch.Generator):
            perm = torch.randperm(len(users), generator=gen)
            for s in range(0, len(perm), cfg.batch_size):
                b = perm[s : s + cfg.batch_size]
                u, i = users[b], items[b]
                j = torch.randint(1, n_cols, (len(b),), generator=gen)
                # one resampling round for negatives that hit a positive (rare in sparse data)
                clash = torch.isin(u * n_cols + j, seen)
                if clash.any():
                    j[clash] = torch.randint(1, n_cols, (int(clash.sum()),), generator=gen)
                yield u, i, j

        def loss_fn(batch):
            u, i, j = batch
            x, l2 = self.net_(u, i, j)
            return -torch.nn.functional.logsigmoid(x).mean() + cfg.reg * l2 / len(u), len(u)

        self._train(
            batches=batches,
            loss_fn=loss_fn,
            valid=valid,
            steps_per_epoch=(len(users) + cfg.batch_size - 1) // cfg.batch_size,
        )

    @torch.no_grad()
    def _score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        items = self.net_.item.weight.double()  # (N+1, D)
        users = self.net_.user.weight.double()[torch.from_numpy(user_ids)]  # (B, D)
        for b, (u, h) in enumerate(zip(user_ids, histories, strict=True)):
            if u == 0 and len(h):
                users[b] = items[torch.from_numpy(np.asarray(h, dtype=np.int64))].mean(0)
        return users @ items.T

    def _load_state(self, tensors: dict[str, np.ndarray]) -> None:
        self._set_net(MF(self.n_users_, self.n_items_, self.config.embedding_dim), tensors)
