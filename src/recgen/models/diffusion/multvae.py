"""MultVAE: variational autoencoder with a multinomial likelihood (Liang et al., WWW 2018, "Variational
Autoencoders for Collaborative Filtering"), the baseline the DiffRec paper compares against.

q(z | x_u): L2-normalised interaction vector, dropout, tanh MLP [N -> 600 -> 2 x 200] giving mean and
log-variance; p(x | z): tanh MLP [200 -> 600 -> N] giving logits; loss = -sum_i x_ui log softmax(logits)_i
+ beta * KL, with beta annealed linearly from 0 to ``anneal_cap`` over ``anneal_steps`` updates. Ranking uses
the logits of the decoder applied to the posterior mean.

Where recgen differs from the paper / dawenl/vae_cf: AdamW from the shared trainer (weight decay 0 by default)
instead of Adam with L2 on the weights; the epoch is chosen on validation NDCG@10 (the paper also selects on
validation NDCG@100); ``anneal_steps`` defaults to 2,000 updates instead of 200,000 because our datasets are
two orders of magnitude smaller than ML-20M (the paper reaches its best beta within the first epochs either way).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recgen.config import check
from recgen.models.diffusion.uservec import UserVectorConfig, UserVectorRecommender


@dataclass(frozen=True, kw_only=True)
class MultVAEConfig(UserVectorConfig):
    hidden_dim: int = 600  # encoder/decoder hidden width
    latent_dim: int = 200  # size of z
    dropout: float = 0.5  # dropout on the normalised input
    anneal_cap: float = 0.2  # largest KL weight beta
    anneal_steps: int = 2000  # updates over which beta grows linearly to anneal_cap
    lr: float = 1e-3
    batch_size: int = 500

    def validate(self) -> None:
        super().validate()
        check(self.hidden_dim >= 1, f"hidden_dim must be >= 1, got {self.hidden_dim}")
        check(self.latent_dim >= 1, f"latent_dim must be >= 1, got {self.latent_dim}")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        check(self.anneal_cap >= 0, f"anneal_cap must be >= 0, got {self.anneal_cap}")
        check(self.anneal_steps >= 1, f"anneal_steps must be >= 1, got {self.anneal_steps}")


def _init_linear(layer: nn.Linear) -> nn.Linear:
    nn.init.xavier_normal_(layer.weight)
    nn.init.normal_(layer.bias, std=0.001)
    return layer


class MultVAENet(nn.Module):
    def __init__(self, n_cols: int, cfg: MultVAEConfig) -> None:
        super().__init__()
        self.enc1 = _init_linear(nn.Linear(n_cols, cfg.hidden_dim))
        self.enc2 = _init_linear(nn.Linear(cfg.hidden_dim, 2 * cfg.latent_dim))
        self.dec1 = _init_linear(nn.Linear(cfg.latent_dim, cfg.hidden_dim))
        self.dec2 = _init_linear(nn.Linear(cfg.hidden_dim, n_cols))
        self.drop = nn.Dropout(cfg.dropout)
        self.latent_dim = cfg.latent_dim
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # for KL annealing (resumable)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.drop(F.normalize(x, dim=-1))
        h = self.enc2(torch.tanh(self.enc1(h)))
        return h[:, : self.latent_dim], h[:, self.latent_dim :]  # mean, log-variance

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec2(torch.tanh(self.dec1(z)))


def multinomial_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-sum_i x_i log softmax(logits)_i, averaged over the batch (column 0, padding, excluded)."""
    return -(F.log_softmax(logits[:, 1:], dim=-1) * x[:, 1:]).sum(-1).mean()


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)).mean()


class MultVAE(UserVectorRecommender):
    name = "multvae"
    Config = MultVAEConfig

    def _build_net(self) -> nn.Module:
        return MultVAENet(self.n_items_ + 1, self.config)

    def _loss(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        cfg, net = self.config, self.net_
        mu, logvar = net.encode(x)
        eps = torch.randn(mu.shape, generator=gen, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        beta = min(cfg.anneal_cap, float(net.updates) / cfg.anneal_steps)
        net.updates += 1
        return multinomial_nll(net.decode(z), x) + beta * gaussian_kl(mu, logvar)

    def _infer(self, net: nn.Module, x: torch.Tensor, histories: Sequence[np.ndarray], cfg) -> torch.Tensor:
        mu, _ = net.encode(x)
        return net.decode(mu)
