"""BPR-MF: matrix factorisation trained with Bayesian Personalized Ranking (Rendle et al., UAI 2009).

x_ui = <p_u, q_i>; loss = -log sigmoid(x_ui - x_uj) for a training pair (u, i) and a uniformly sampled item j
the user has not interacted with, plus L2 on the embeddings in the batch. Optimised with Adam.

Where recgen differs from the paper: Adam instead of SGD (as RecBole and most reimplementations); the epoch is
chosen on validation NDCG@10 when a validation set is given (evaluated every ``eval_every`` epochs, stopping
after ``patience`` evaluations without improvement) and the best epoch's weights are kept. A user unknown at
training time but given with a history (a session) is folded in as the mean of its history's item vectors.
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
from recgen.models.base import Recommender
from recgen.train.early_stopping import EarlyStopping


@dataclass(frozen=True, kw_only=True)
class BPRConfig:
    embedding_dim: int = 64  # size of user and item vectors
    epochs: int = 100  # maximum training epochs
    lr: float = 1e-3  # Adam learning rate
    batch_size: int = 4096  # training pairs per step
    reg: float = 1e-5  # L2 weight on the batch's embeddings
    eval_every: int = 5  # validation every N epochs (when a validation set is given)
    patience: int = 4  # evaluations without improvement before stopping
    seed: int = 0  # seeds initialisation and negative sampling

    def validate(self) -> None:
        check(self.embedding_dim >= 1, f"embedding_dim must be >= 1, got {self.embedding_dim}")
        check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.reg >= 0, f"reg must be >= 0, got {self.reg}")
        check(self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}")
        check(self.patience >= 1, f"patience must be >= 1, got {self.patience}")


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


class BPR(Recommender):
    name = "bpr"
    Config = BPRConfig

    def _fit(self, dataset: Dataset, valid) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.net_ = MF(dataset.n_users, dataset.n_items, cfg.embedding_dim)
        opt = torch.optim.Adam(self.net_.parameters(), lr=cfg.lr)
        pairs = np.unique(dataset.user_ids * (dataset.n_items + 1) + dataset.item_ids)
        users = torch.from_numpy(pairs // (dataset.n_items + 1))
        items = torch.from_numpy(pairs % (dataset.n_items + 1))
        seen = torch.from_numpy(pairs)
        stopper = EarlyStopping(patience=cfg.patience) if valid is not None else None
        self.train_log_: list[dict[str, float]] = []
        from recgen.progress import track

        for epoch in track(range(1, cfg.epochs + 1), description="bpr epochs", total=cfg.epochs):
            perm = torch.randperm(len(users), generator=gen)
            total = 0.0
            self.net_.train()
            for s in range(0, len(perm), cfg.batch_size):
                b = perm[s : s + cfg.batch_size]
                u, i = users[b], items[b]
                j = torch.randint(1, dataset.n_items + 1, (len(b),), generator=gen)
                # one resampling round for negatives that hit a positive (rare in sparse data)
                clash = torch.isin(u * (dataset.n_items + 1) + j, seen)
                if clash.any():
                    j[clash] = torch.randint(1, dataset.n_items + 1, (int(clash.sum()),), generator=gen)
                x, l2 = self.net_(u, i, j)
                loss = -torch.nn.functional.logsigmoid(x).mean() + cfg.reg * l2 / len(b)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(b)
            entry = {"epoch": epoch, "loss": total / len(users)}
            if stopper is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                from recgen.eval.evaluator import evaluate

                self.fitted_ = True  # evaluation needs scoring
                value = evaluate(self, valid, ks=(10,)).metrics["ndcg@10"]
                entry["valid_ndcg@10"] = value
                if stopper.step(epoch, value, self.net_.state_dict()):
                    self.train_log_.append(entry)
                    break
            self.train_log_.append(entry)
        if stopper is not None and stopper.best_state is not None:
            self.net_.load_state_dict(stopper.best_state)
            self.best_epoch_ = stopper.best_epoch
        else:
            self.best_epoch_ = len(self.train_log_)
        self.net_.eval()

    @torch.no_grad()
    def _score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        items = self.net_.item.weight.double()  # (N+1, D)
        users = self.net_.user.weight.double()[torch.from_numpy(user_ids)]  # (B, D)
        for b, (u, h) in enumerate(zip(user_ids, histories, strict=True)):
            if u == 0 and len(h):
                users[b] = items[torch.from_numpy(np.asarray(h, dtype=np.int64))].mean(0)
        return users @ items.T

    def _extra_meta(self) -> dict:
        return {"best_epoch": getattr(self, "best_epoch_", None)}

    def _state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy() for k, v in self.net_.state_dict().items()}

    def _load_state(self, tensors: dict[str, np.ndarray]) -> None:
        self.net_ = MF(self.n_users_, self.n_items_, self.config.embedding_dim)
        self.net_.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
        self.net_.eval()
