"""Network blocks shared by the transformer models: multi-head attention and the pre-LayerNorm block.

SASRec (and DreamRec's encoder, which is a SASRec) use them as causal self-attention blocks; TIGER as the
encoder and decoder layers of its seq2seq transformer (``cross=True`` adds cross-attention over the encoder's
memory, and its beam search calls ``queries``/``keys_values``/``attend`` directly to cache keys and values).
HSTU's unit is not here: its pointwise SiLU attention with gating is another operation, kept in ``hstu.py``.

``cheap_dropout`` (TIGER on a CPU) draws dropout masks, the attention weights' too, with ``recgen.ops.dropout``
instead of torch's per-element Bernoulli; SASRec keeps torch's dropout inside ``scaled_dot_product_attention``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recgen.ops.dropout import Dropout, attention


def extend_cache(cache: dict | None, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values (..., T, Dh) of new positions -> those of the positions in ``cache`` followed by these
    (..., S, Dh), which the cache then holds; without a cache, ``k`` and ``v`` as they are."""
    if cache is None:
        return k, v
    if "k" in cache:
        k, v = torch.cat([cache["k"], k], dim=-2), torch.cat([cache["v"], v], dim=-2)
    cache["k"], cache["v"] = k, v
    return k, v


class MultiHeadAttention(nn.Module):
    """Multi-head attention with one fused q/k/v projection (``qkv``) and an output projection (``out``).

    Args:
        d: model width.
        heads: attention heads.
        dropout: dropout on the attention weights while training.
        head_dim: width of one head (0 = d / heads).
        cheap_dropout: draw the weights' dropout mask with ``recgen.ops.dropout`` (see the module docstring).
    """

    def __init__(self, d: int, heads: int, dropout: float, head_dim: int = 0, cheap_dropout: bool = False) -> None:
        super().__init__()
        self.h, self.dropout, self.cheap = heads, dropout, cheap_dropout
        self.inner = heads * (head_dim or d // heads)
        self.qkv = nn.Linear(d, 3 * self.inner)
        self.out = nn.Linear(self.inner, d)

    def split(self, x: torch.Tensor) -> torch.Tensor:  # (..., T, H * Dh) -> (..., H, T, Dh)
        *lead, t, d = x.shape
        return x.view(*lead, t, self.h, d // self.h).transpose(-3, -2)

    def queries(self, x: torch.Tensor) -> torch.Tensor:
        """(..., T, D) -> (..., H, T, Dh)."""
        return self.split(F.linear(x, self.qkv.weight[: self.inner], self.qkv.bias[: self.inner]))

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., S, D) -> keys and values, each (..., H, S, Dh) (computed once and reused by cached decoding)."""
        k, v = F.linear(x, self.qkv.weight[self.inner :], self.qkv.bias[self.inner :]).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Queries from ``x`` (..., T, D) over keys/values (..., H, S, Dh); ``mask``: bool, True = attend."""
        y = self._sdpa(self.queries(x), k, v, mask)
        y = y.transpose(-3, -2)
        return self.out(y.reshape(*y.shape[:-2], -1))

    def _sdpa(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.cheap:
            return attention(q, k, v, mask, self.dropout, self.training)
        p = self.dropout if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: dict | None = None) -> torch.Tensor:
        """Self-attention over (B, T, D) with one fused projection; ``mask`` (B or 1, 1, T, S), True = attend.

        ``cache``: a dict that keeps the keys and values of the positions seen so far (S = those and these T):
        the first call fills it, later calls attend over it and extend it (ReaRec's reasoning steps)."""
        b, t, _ = x.shape
        q, k, v = (self.split(z) for z in self.qkv(x).split(self.inner, dim=-1))  # (B, H, T, Dh)
        k, v = extend_cache(cache, k, v)
        y = self._sdpa(q, k, v, mask)
        return self.out(y.transpose(1, 2).reshape(b, t, self.inner))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: self-attention, optional cross-attention over a memory, feed-forward (ReLU)."""

    def __init__(
        self,
        d: int,
        heads: int,
        ffn_dim: int,
        dropout: float,
        *,
        head_dim: int = 0,
        cross: bool = False,
        cheap_dropout: bool = False,
    ) -> None:
        super().__init__()
        drop = Dropout if cheap_dropout else nn.Dropout
        self.norm1 = nn.LayerNorm(d)
        self.attn = MultiHeadAttention(d, heads, dropout, head_dim, cheap_dropout)
        self.cross_norm = nn.LayerNorm(d) if cross else None
        self.cross = MultiHeadAttention(d, heads, dropout, head_dim, cheap_dropout) if cross else None
        self.norm2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn_dim), nn.ReLU(), drop(dropout), nn.Linear(ffn_dim, d))
        self.drop = drop(dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        cache: dict | None = None,
    ) -> torch.Tensor:
        """(B, T, D) -> (B, T, D); ``memory`` (B, S, D) for a block with cross-attention; ``cache`` the
        self-attention's keys and values of earlier positions (``MultiHeadAttention.forward``)."""
        x = x + self.drop(self.attn(self.norm1(x), mask, cache))
        if self.cross is not None:
            k, v = self.cross.keys_values(memory)
            x = x + self.drop(self.cross.attend(self.cross_norm(x), k, v, memory_mask))
        return x + self.drop(self.ffn(self.norm2(x)))
