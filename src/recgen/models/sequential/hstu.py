"""HSTU: Hierarchical Sequential Transduction Units (Zhai et al., ICML 2024, "Actions Speak Louder than Words:
Trillion-Parameter Sequential Transducers for Generative Recommendations").

Each layer (a sequential transduction unit) does, on x (B, L, D):

    U, V, Q, K = split(SiLU(LayerNorm(x) @ W_uvqk))                       # pointwise projection
    A = SiLU(Q K^T + rab(positions, timestamps)) / N, causal              # pointwise aggregated attention
    y = x + W_o(Dropout(U * LayerNorm(A V)))                              # gating by U

with N = max_seq_len, a learned relative-position bias (one weight per offset) plus a learned bias per
log-bucket of the time gap between events. Inputs are item embeddings scaled by sqrt(D) plus learned
positions; outputs and item embeddings are L2-normalised and compared by dot product over a temperature
(0.05), as in the reference research code (meta-recsys/generative-recommenders,
``research/modeling/sequential/hstu.py``).

Where recgen differs from the reference code: dense padded tensors instead of jagged ones (no fbgemm);
the time bucket of query i and key j uses ts[i] - ts[j] (the reference uses the timestamp of the *next*
event for query i, i.e. of the target, which a ranking request knows in production but our offline protocol
does not give the model); padded keys are masked; the loss defaults to full softmax cross-entropy over the
catalogue (``loss="sampled"`` gives the paper's sampled softmax); the epoch is chosen on validation NDCG@10.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from recgen.config import check
from recgen.models.nn import extend_cache
from recgen.models.sequential.next_item import SequenceEncoder, SequentialConfig, SequentialRecommender
from recgen.models.sequential.reasoning import Reasoner


@dataclass(frozen=True, kw_only=True)
class HSTUConfig(SequentialConfig):
    """HSTU's fields; the shared training fields (lr, epochs, loss, ...) come from SequentialConfig."""

    attention_dim: int = 0  # per-head Q/K width (0 = embedding_dim / n_heads)
    linear_dim: int = 0  # per-head U/V width (0 = embedding_dim / n_heads)
    time_buckets: int = 128  # log-spaced buckets of the time-gap bias
    temperature: float = 0.05  # softmax temperature over L2-normalised similarities

    def validate(self) -> None:
        super().validate()
        check(
            (self.attention_dim > 0 and self.linear_dim > 0) or self.embedding_dim % self.n_heads == 0,
            f"n_heads must divide embedding_dim (or set attention_dim and linear_dim), got {self.n_heads}",
        )
        check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        check(self.time_buckets >= 1, f"time_buckets must be >= 1, got {self.time_buckets}")

    @property
    def dqk(self) -> int:
        return self.attention_dim or self.embedding_dim // self.n_heads

    @property
    def dv(self) -> int:
        return self.linear_dim or self.embedding_dim // self.n_heads


class RelativeBias(nn.Module):
    """rab(i, j) = w_pos[L - 1 + i - j] + w_time[bucket(ts_i - ts_j)], bucket = floor(ln(max(|dt|, 1)) / 0.301)."""

    def __init__(self, max_len: int, n_buckets: int) -> None:
        super().__init__()
        self.max_len, self.n_buckets = max_len, n_buckets
        self.pos_w = nn.Parameter(torch.empty(2 * max_len - 1).normal_(0, 0.02))
        self.ts_w = nn.Parameter(torch.empty(n_buckets + 1).normal_(0, 0.02))

    def forward(self, t: int, ts: torch.Tensor | None, s: int = 0) -> torch.Tensor:
        """The bias of the last t of s positions (s = t unless given) over all s: (1 or B, t, s)."""
        s = s or t
        idx = torch.arange(s, device=self.pos_w.device)
        bias = self.pos_w[self.max_len - 1 + idx[s - t :, None] - idx[None, :]][None]  # (1, t, s)
        if ts is not None:
            dt = (ts[:, s - t :, None] - ts[:, None, :]).abs().clamp(min=1.0)  # (B, t, s)
            buckets = (torch.log(dt) / 0.301).long().clamp(0, self.n_buckets)
            bias = bias + self.ts_w[buckets]
        return bias


class STU(nn.Module):
    """One sequential transduction unit."""

    def __init__(self, cfg: HSTUConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h, d = cfg.n_heads, cfg.embedding_dim
        self.uvqk = nn.Parameter(torch.empty(d, 2 * h * cfg.dv + 2 * h * cfg.dqk).normal_(0, 0.02))
        self.out = nn.Linear(h * cfg.dv, d)
        nn.init.xavier_uniform_(self.out.weight)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor, allowed: torch.Tensor, cache: dict | None = None
    ) -> torch.Tensor:
        """(B, T, D) -> (B, T, D); ``bias`` and ``allowed`` (B, T, S); ``cache`` the keys and values of the S - T
        earlier positions, extended by these (``SequenceEncoder.attended``)."""
        c = self.cfg
        b, t, d = x.shape
        h = c.n_heads
        z = F.silu(F.layer_norm(x, (d,)) @ self.uvqk)
        u, v, q, k = z.split([h * c.dv, h * c.dv, h * c.dqk, h * c.dqk], dim=-1)
        q = q.view(b, t, h, c.dqk).transpose(1, 2)  # (B, H, L, dqk)
        k = k.view(b, t, h, c.dqk).transpose(1, 2)
        v = v.view(b, t, h, c.dv).transpose(1, 2)  # (B, H, L, dv)
        k, v = extend_cache(cache, k, v)
        # pointwise aggregated attention, no softmax; divided by the fixed max length as in the reference
        attn = F.silu(q @ k.transpose(-1, -2) + bias[:, None]) / c.max_seq_len  # (B, H, L, L)
        attn = attn * allowed[:, None]
        a = (attn @ v).transpose(1, 2).reshape(b, t, h * c.dv)  # (B, L, H*dv)
        return x + self.out(self.drop(u * F.layer_norm(a, (h * c.dv,))))


class HSTUNet(SequenceEncoder):
    l2_norm = True

    def __init__(self, n_items: int, cfg: HSTUConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.temperature = cfg.temperature
        self.item_emb = nn.Embedding(n_items + 1, cfg.embedding_dim, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_seq_len, cfg.embedding_dim)
        # reasoning steps extend the sequence past max_seq_len: the position bias covers them (no change without)
        self.rab = RelativeBias(cfg.max_seq_len + cfg.reason_steps, cfg.time_buckets)
        self.reasoner = Reasoner(cfg) if cfg.reason_steps else None
        self.layers = nn.ModuleList(STU(cfg) for _ in range(cfg.n_layers))
        self.drop = nn.Dropout(cfg.dropout)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def transform(
        self, x: torch.Tensor, keep: torch.Tensor, ts: torch.Tensor | None = None, cache: dict | None = None
    ) -> torch.Tensor:
        """Inputs (B, T, D), non-padding mask (B, T) and timestamps (B, T) -> (B, T, D) hidden states; ``cache``:
        the keys, values and timestamps of earlier positions (``attended``), which these T positions follow."""
        t = x.shape[1]
        keep, ts, causal, layers = self.attended(t, keep, ts, cache)
        allowed = (causal[None] & keep[:, None, :]).to(x.dtype)  # (B, T, S)
        bias = self.rab(t, ts.to(x.dtype) if ts is not None else None, keep.shape[1])
        for layer, kv in zip(self.layers, layers, strict=True):
            x = layer(x, bias, allowed, kv)
        return x


class HSTU(SequentialRecommender):
    name = "hstu"
    Config = HSTUConfig
    uses_timestamps = True

    def _build_net(self, n_items: int) -> nn.Module:
        return HSTUNet(n_items, self.config)

    def _encoder_flops(self, t: int) -> float:
        c = self.config
        d, h = c.embedding_dim, c.n_heads
        # per layer: uvqk 2td(2h(dv+dqk)), scores 2t^2 h dqk, weighted values 2t^2 h dv, output 2t h dv d
        return c.n_layers * (2 * t * d * 2 * h * (c.dv + c.dqk) + 2 * t * t * h * (c.dqk + c.dv) + 2 * t * h * c.dv * d)
