"""Full-softmax cross-entropy over a catalogue, fused and blocked for a CPU.

``fused_softmax_ce(h, emb, targets)`` is ``F.cross_entropy(h @ emb.T, targets)`` (mean over rows) without the
(P, N) logits matrix ever being kept: the forward pass makes the logits ``rows`` rows at a time and keeps only each
row's log-sum-exp; the backward pass makes each block again, turns it into ``softmax - onehot`` in place and
multiplies it out into both gradients (``grad_h = G @ emb``, ``grad_emb += G.T @ h``). Against autograd over blocks
(``log_softmax`` + ``nll_loss``, each block's output saved) it skips the saved (P, N) output, the zero-filled (P, N)
gradient ``nll_loss`` scatters into, and ``log_softmax``'s backward pass over both, at the price of one more block
matrix product; measured in ``benchmarks/train_step_speed.py``.

bfloat16 blocks were tried on a CPU with AMX-BF16 (the 2-core machine of Nov 2026): no faster here, since with
64-d embeddings a block product writes one logit per 128 FLOPs and is bound by memory, not by the multiplier.

Why not a library: torch has no fused CPU cross-entropy over a large output layer (Liger's and Apple's
cut-cross-entropy are GPU kernels); this is 40 lines of plain torch.
"""

from __future__ import annotations

import torch

ROWS = 64  # rows of the (P, N) logits made at a time: 64 x 12k fp32 logits (3 MB) stay near the cache


class _FusedSoftmaxCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, emb: torch.Tensor, targets: torch.Tensor, rows: int):
        lse = torch.empty(len(h), dtype=h.dtype, device=h.device)
        for i in range(0, len(h), rows):
            lse[i : i + rows] = torch.logsumexp(h[i : i + rows] @ emb.T, dim=1)
        target_logit = (h * emb[targets]).sum(-1)
        ctx.save_for_backward(h, emb, targets, lse)
        ctx.rows = rows
        return (lse - target_logit).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, emb, targets, lse = ctx.saved_tensors
        rows = ctx.rows
        scale = grad / len(h)
        grad_h = torch.empty_like(h)
        grad_emb = torch.zeros_like(emb)
        for i in range(0, len(h), rows):
            block = h[i : i + rows] @ emb.T
            block.sub_(lse[i : i + rows, None]).exp_()  # the softmax, in place
            block[torch.arange(len(block), device=block.device), targets[i : i + rows]] -= 1.0
            block.mul_(scale)
            torch.mm(block, emb, out=grad_h[i : i + rows])
            grad_emb.addmm_(block.T, h[i : i + rows])
        return grad_h, grad_emb, None, None


def fused_softmax_ce(h: torch.Tensor, emb: torch.Tensor, targets: torch.Tensor, *, rows: int = ROWS) -> torch.Tensor:
    """Mean cross-entropy of ``softmax(h @ emb.T)`` against ``targets`` (see the module docstring)."""
    return _FusedSoftmaxCE.apply(h, emb, targets, rows)
