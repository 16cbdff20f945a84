"""Dropout whose random mask is cheap on a CPU.

``torch.nn.functional.dropout`` on a CPU draws one Bernoulli sample per element (``bernoulli_``); with it, dropout
was about a third of a TIGER training step on the 2-core machine, and this mask makes the step 1.17x faster at the
reduced size and 1.12x at the paper's (``benchmarks/results/speed/dropout_cpu.json``, written by
``benchmarks/dropout_speed.py``, which measures all three: torch's mask, this one, none). Here one 64-bit draw
gives four 16-bit lanes, and an element is kept when its lane is at or above a threshold: the drop probability is ``p``
rounded to a multiple of 1/65536 (0.1 -> 0.100006), and kept elements are scaled by the exact inverse of the
kept probability, so the output's expectation equals the input, as in ``F.dropout``. The draws come from torch's
global generator, so ``torch.manual_seed`` makes runs repeatable; the masks are other masks than ``F.dropout``'s.

Why not a library: torch has no cheaper CPU dropout, and this is 20 lines. On a GPU ``F.dropout`` is used as is
(its mask is cheap there). Used by TIGER; SASRec-CE and HSTU keep torch's dropout (under 10% of their step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_LANES = 65536


def _keep_mask(shape: torch.Size, p: float) -> tuple[torch.Tensor, float]:
    """A bool mask of ``shape`` (True = keep) dropping with probability ~``p``, and the scale of kept values."""
    n = 1
    for s in shape:
        n *= s
    drop = min(round(p * _LANES), _LANES - 1)  # p within 1/131072 of 1 keeps one lane value in 65536
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
    lanes = words.view(torch.int16)[:n]  # four uniform 16-bit lanes per draw
    keep = lanes >= (drop - _LANES // 2)
    return keep.view(shape), _LANES / (_LANES - drop)


class _MaskedScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return (x * keep).mul_(scale)  # a bool factor is promoted in the kernel: one pass

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (keep,) = ctx.saved_tensors
        return (grad * keep).mul_(ctx.scale), None, None


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with a cheap mask on a CPU (see the module docstring)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0 or not x.is_floating_point():
        return F.dropout(x, p, training)
    keep, scale = _keep_mask(x.shape, p)
    return _MaskedScale.apply(x, keep, scale)


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, p: float, training: bool
) -> torch.Tensor:
    """``F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p if training else 0)`` (``mask``: bool,
    True = attend), with the attention weights' dropout drawn by the cheap mask on a CPU: torch's fused CPU kernels
    take no dropout, and its math path draws a Bernoulli per weight; this is that math path with the cheap mask."""
    p = p if training else 0.0
    if p == 0.0 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
    w = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if mask is not None:
        w = w.masked_fill(~mask, -torch.inf)
    return dropout(torch.softmax(w, dim=-1), p) @ v


class Dropout(nn.Dropout):
    """``nn.Dropout`` with the cheap CPU mask (same ``p``, same state dict: none)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
