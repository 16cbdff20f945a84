"""Full-softmax cross-entropy over a catalogue, fused and blocked for a CPU.

``fused_softmax_ce(h, emb, targets)`` is ``F.cross_entropy(h @ emb.T, targets)`` (mean over rows) without the
(P, N) logits matrix ever being kept: the forward pass makes the logits ``rows`` rows at a time, takes each row's
log-sum-exp, turns the block into ``softmax - onehot`` in place and multiplies it out into both gradients
(``grad_h = G @ emb``, ``grad_emb += G.T @ h``) there and then; the backward pass only scales them by the incoming
gradient (the loss is a scalar, so that is all it can be). Against autograd over blocks (``log_softmax`` +
``nll_loss``, each block's output saved) it skips the saved (P, N) output, the zero-filled (P, N) gradient
``nll_loss`` scatters into, and ``log_softmax``'s backward pass over both. Until Dec 2026 the backward pass made
each block of logits again (one more block product per block); where no gradient is asked for (``no_grad``,
inputs without ``requires_grad``) only the log-sum-exp is computed. Measured in ``benchmarks/train_step_speed.py``.

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
as the pairwise form to float rounding (``tests/models/test_sequential.py``); measured in
``benchmarks/train_step_speed.py``.

``fused_erl_loss(x, emb, targets, kl)`` is ERL's whole loss on the reasoning steps, the cross-entropy of each step
k >= 1 plus ``-kl`` times the diversity term, from one pass over the same blocks: computed apart, the K
cross-entropies made their (B, N) logits twice each (forward and backward) and the diversity term its own, 3K + 1
logit products and 4K + 2 gradient products per B rows, where one pass makes K + 1 and 2K + 2. The gradient in the
logits is the sum of the two: ``(p_k - onehot_k) / B`` for the steps and the diversity's above.
"""

from __future__ import annotations

import torch

ROWS = 64  # rows of the (P, N) logits made at a time: 64 x 12k fp32 logits (3 MB) stay near the cache


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float32 or float64: bf16 / fp16 inputs (under autocast) are computed in float32."""
    dtype = torch.promote_types(*(t.dtype for t in tensors))
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


class _FusedSoftmaxCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, emb: torch.Tensor, targets: torch.Tensor, rows: int, grad_mode: bool):
        ctx.dtypes = (h.dtype, emb.dtype)
        dtype = _compute_dtype(h, emb)
        with torch.autocast(h.device.type, enabled=False):
            h, emb = h.to(dtype), emb.to(dtype)
            grads = grad_mode and any(ctx.needs_input_grad[:2])  # (needs_input_grad ignores no_grad)
            lse = torch.empty(len(h), dtype=dtype, device=h.device)
            grad_h = torch.empty(h.shape, dtype=dtype, device=h.device) if grads else None  # contiguous
            grad_emb = torch.zeros_like(emb) if grads else None
            for i in range(0, len(h), rows):
                block = h[i : i + rows] @ emb.T
                lse[i : i + rows] = torch.logsumexp(block, dim=1)
                if grads:  # the gradient now, from the same block (backward only scales it)
                    block.sub_(lse[i : i + rows, None]).exp_()  # the softmax, in place
                    block[torch.arange(len(block), device=block.device), targets[i : i + rows]] -= 1.0
                    torch.mm(block, emb, out=grad_h[i : i + rows])
                    grad_emb.addmm_(block.T, h[i : i + rows])
            target_logit = (h * emb[targets]).sum(-1)
        ctx.save_for_backward(grad_h, grad_emb)
        return (lse - target_logit).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad_h, grad_emb = ctx.saved_tensors
        scale = grad / len(grad_h)
        return (grad_h * scale).to(ctx.dtypes[0]), (grad_emb * scale).to(ctx.dtypes[1]), None, None, None


def fused_softmax_ce(h: torch.Tensor, emb: torch.Tensor, targets: torch.Tensor, *, rows: int = ROWS) -> torch.Tensor:
    """Mean cross-entropy of ``softmax(h @ emb.T)`` against ``targets`` (see the module docstring)."""
    return _FusedSoftmaxCE.apply(h, emb, targets, rows, torch.is_grad_enabled())


class _FusedStates(torch.autograd.Function):
    """``ce_w * sum_{k >= 1} CE(x[:, k]) + div_w * diversity(x)`` over (B, S, D) states, value and gradients in
    one pass over each block of logits (``fused_step_diversity``, ``fused_erl_loss``)."""

    @staticmethod
    def forward(ctx, x, emb, targets, ce_w: float, div_w: float, rows: int, grad_mode: bool):
        b, s, d = x.shape
        dtypes = (x.dtype, emb.dtype)
        dtype = _compute_dtype(x, emb)  # bf16 / fp16 in float32
        with torch.autocast(x.device.type, enabled=False):
            xf, ef = x.to(dtype), emb.to(dtype)
            grads = grad_mode and any(ctx.needs_input_grad[:2])
            grad_x = torch.empty(xf.shape, dtype=dtype, device=xf.device) if grads else None  # contiguous
            grad_emb = torch.zeros_like(ef) if grads else None
            ce_total = torch.zeros((), dtype=dtype, device=x.device)
            div_total = torch.zeros((), dtype=dtype, device=x.device)
            c = div_w / (b * s * max(s - 1, 1))  # the diversity's weight per (row, state)
            per = max(rows // max(s, 1), 1)  # rows of x per block: ``rows`` rows of logits
            for i in range(0, b, per):
                xb = xf[i : i + per]
                z = (xb.reshape(-1, d) @ ef.T).view(len(xb), s, -1)  # (bb, S, N) logits
                z.sub_(torch.logsumexp(z, dim=-1, keepdim=True))  # log p, in place
                if ce_w:
                    idx = targets[i : i + per, None, None].expand(len(xb), s - 1, 1)
                    ce_total -= z[:, 1:].gather(-1, idx).sum()  # - log p_k(target), steps 1..S-1
                g = torch.mul(z, s).sub_(z.sum(dim=1, keepdim=True)) if div_w else None  # S log p_j - sum_i log p_i
                p = z.exp_()  # p, in place
                if div_w:
                    inner = (p * g).sum(dim=-1, keepdim=True)  # (bb, S, 1)
                    div_total += inner.sum()
                if grads:
                    # d/dz: div_w c p_j (g_j - <p_j, g_j>) + ce_w (p_k - onehot_k) / B for the steps k >= 1
                    grad_z = g.sub_(inner).mul_(p).mul_(c) if div_w else torch.zeros_like(p)
                    if ce_w:
                        grad_z[:, 1:].add_(p[:, 1:], alpha=ce_w / b)
                        minus = torch.full(idx.shape, -ce_w / b, dtype=dtype, device=x.device)
                        grad_z[:, 1:].scatter_add_(-1, idx, minus)
                    grad_z = grad_z.view(-1, z.shape[-1])
                    torch.mm(grad_z, ef, out=grad_x[i : i + per].view(-1, d))
                    grad_emb.addmm_(grad_z.T, xb.reshape(-1, d))
        ctx.save_for_backward(grad_x, grad_emb)
        ctx.dtypes = dtypes
        return ce_total * (ce_w / b) + div_total * c

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad_x, grad_emb = ctx.saved_tensors
        return (grad_x * grad).to(ctx.dtypes[0]), (grad_emb * grad).to(ctx.dtypes[1]), None, None, None, None, None


def fused_step_diversity(x: torch.Tensor, emb: torch.Tensor, *, rows: int = ROWS) -> torch.Tensor:
    """ERL's diversity term: mean over rows and pairs i != j of KL(p_j || p_i), p_s = softmax(x[:, s] @ emb.T),
    p_i held fixed (see the module docstring); ``x`` (B, S, D) divided by the temperature, ``emb`` (N, D)."""
    if x.shape[1] < 2:
        raise ValueError(f"the diversity term needs at least 2 states per row, got {x.shape[1]}")
    return _FusedStates.apply(x, emb, None, 0.0, 1.0, rows, torch.is_grad_enabled())


def fused_erl_loss(
    x: torch.Tensor, emb: torch.Tensor, targets: torch.Tensor, kl: float, *, rows: int = ROWS
) -> torch.Tensor:
    """ReaRec ERL's loss on the reasoning steps: ``sum_{k=1}^{S-1} CE(softmax(x[:, k] @ emb.T), targets) - kl *
    fused_step_diversity(x, emb)``, both from the same blocks of logits (made once, see the module docstring);
    ``x`` (B, S, D) the states divided by the temperature (state 0 enters the diversity term only), ``targets`` (B,)
    indices into ``emb`` (N, D)."""
    if x.shape[1] < 2:
        raise ValueError(f"ERL's loss needs at least 2 states per row (a reasoning step), got {x.shape[1]}")
    return _FusedStates.apply(x, emb, targets, 1.0, -float(kl), rows, torch.is_grad_enabled())
