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

``fused_step_diversity(x, emb)`` is ReaRec's ERL diversity term over the same kind of logits (``x`` (B, S, D) the
S states of each row, already divided by the temperature): the mean over rows and ordered pairs i != j of
KL(p_j || p_i), p_s = softmax(x_s @ emb.T), with p_i held fixed (the reference code detaches that side). Written
as the reference does, the pairs make a (B, S, S, N) tensor and its backward a second one: on HSTU with K = 3 on
Sports (S = 4, 18,357 items) that was most of a training step. Summed over i first, the mean is
``c * sum_{b,j} <p_j, g_j>`` with ``g_j = S log p_j - sum_i log p_i`` and c = 1 / (B S (S - 1)), and since only
(S - 1) log p_j in g_j carries gradient (through p_j, and ``<p_j, d log p_j>`` is 0), the gradient in the logits
is ``c * p_j * (g_j - <p_j, g_j>)``. It is computed with the value, a block of rows at a time (the logits never
kept), and multiplied out into both gradients at once; backward only scales them. The same values and gradients
as the pairwise form to float rounding (``tests/ops/test_softmax_ce.py``); measured in
``benchmarks/train_step_speed.py``.
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


class _FusedStepDiversity(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, emb: torch.Tensor, rows: int):
        b, s, d = x.shape
        dtypes = (x.dtype, emb.dtype)
        dtype = torch.promote_types(x.dtype, emb.dtype)
        dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32  # bf16 / fp16 in float32
        with torch.autocast(x.device.type, enabled=False):
            xf, ef = x.to(dtype), emb.to(dtype)
            grads = any(ctx.needs_input_grad[:2])
            grad_x = torch.empty(xf.shape, dtype=dtype, device=xf.device) if grads else None  # contiguous
            grad_emb = torch.zeros_like(ef) if grads else None
            total = torch.zeros((), dtype=xf.dtype, device=x.device)
            per = max(rows // max(s, 1), 1)  # rows of x per block: ``rows`` rows of logits
            for i in range(0, b, per):
                xb = xf[i : i + per]
                z = (xb.reshape(-1, d) @ ef.T).view(len(xb), s, -1)  # (bb, S, N) logits
                z.sub_(torch.logsumexp(z, dim=-1, keepdim=True))  # log p, in place
                g = torch.mul(z, s).sub_(z.sum(dim=1, keepdim=True))  # S log p_j - sum_i log p_i
                p = z.exp_()  # p, in place
                inner = (p * g).sum(dim=-1, keepdim=True)  # (bb, S, 1)
                total += inner.sum()
                if grads:
                    grad_z = g.sub_(inner).mul_(p).view(-1, z.shape[-1])  # p_j * (g_j - <p_j, g_j>)
                    torch.mm(grad_z, ef, out=grad_x[i : i + per].view(-1, d))
                    grad_emb.addmm_(grad_z.T, xb.reshape(-1, d))
        scale = 1.0 / (b * s * max(s - 1, 1))
        ctx.save_for_backward(grad_x, grad_emb)
        ctx.scale, ctx.dtypes = scale, dtypes
        return total * scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad_x, grad_emb = ctx.saved_tensors
        factor = grad * ctx.scale
        return (grad_x * factor).to(ctx.dtypes[0]), (grad_emb * factor).to(ctx.dtypes[1]), None


def fused_step_diversity(x: torch.Tensor, emb: torch.Tensor, *, rows: int = ROWS) -> torch.Tensor:
    """ERL's diversity term: mean over rows and pairs i != j of KL(p_j || p_i), p_s = softmax(x[:, s] @ emb.T),
    p_i held fixed (see the module docstring); ``x`` (B, S, D) divided by the temperature, ``emb`` (N, D)."""
    if x.shape[1] < 2:
        raise ValueError(f"the diversity term needs at least 2 states per row, got {x.shape[1]}")
    return _FusedStepDiversity.apply(x, emb, rows)
