"""Training-step speed (loss, backward) of SASRec-CE and HSTU on a CPU, on real batches of each dataset, one
thread, for forms of the full-softmax loss:

- ``one_matrix``: as written before commit e24d864 (logits = h @ emb.T / tau, padding column set to -inf, one
  P x N matrix);
- ``blocks``: temperature on the queries, padding row left out, autograd over blocks of 256 rows (e24d864 until
  the fused loss);
- ``fused``: ``recgen.ops.softmax_ce`` (blocks of 64 rows, logits never kept, backward fused), the loss today;
- ``fused_bf16``: the same under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (the encoder's products in bf16);
- ``fused_pairwise_kl``: ``fused`` with ReaRec ERL's diversity term in the reference's pairwise form (a (B, S, S, N)
  tensor, as before ``recgen.ops.softmax_ce.fused_step_diversity``);
- ``fused_287a976``: ``fused`` as of commit 287a976, before the cross-entropy's gradient was taken in its forward
  pass and ERL's step cross-entropies were fused with its diversity term (``fused_erl_loss``).

ERL (``--set reason_steps=K``), before and after the fused diversity term, then before and after the one-pass loss:

    PYTHONPATH=src RECGEN_DATA_DIR=../shared/datasets python benchmarks/train_step_speed.py --datasets sports,yelp \
        --models hstu --set reason_steps=3 --variants fused_pairwise_kl,fused \
        --out benchmarks/results/speed/train_step_erl_cpu.json
    ... --models hstu --set reason_steps=3 --variants fused_287a976,fused \
        --out benchmarks/results/speed/train_step_erl_onepass_cpu.json

and the models without reasoning, ``--variants fused_287a976,fused --out .../train_step_onepass_cpu.json``.

With ``--optimizer`` each step is a whole training step (loss, backward, gradient clipping, AdamW), each variant on
its own copy of the model; a variant ending in ``+fused_adamw`` steps torch's fused AdamW kernel instead of the
default (for-each) one:

    ... --optimizer --variants fused,fused+fused_adamw --out benchmarks/results/speed/train_step_adamw_cpu.json

    PYTHONPATH=src RECGEN_DATA_DIR=../shared/datasets python benchmarks/train_step_speed.py \
        --variants blocks,fused,fused_bf16 --out benchmarks/results/speed/train_step_fused_cpu.json

(``benchmarks/results/speed/train_step_cpu.json`` is ``--variants one_matrix,blocks`` as of e24d864, when
``blocks`` was called ``full_softmax_ce``.) The variants alternate (A B C A B C ...) so that other load on the
machine hits all alike; each figure is the median over rounds of the mean step time over ``--steps`` batches, and
``speedup`` is the first variant's time over each other's. Loss values are recorded: they agree up to float
rounding (bf16: up to its rounding).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from speedlib import save, untrained

from recgen.config import parse_sets
from recgen.data.loaders import load_dataset
from recgen.data.split import leave_one_out


def one_matrix_loss(model, batch):
    """The loss as it was: one (P, N+1) logits matrix divided by the temperature, column 0 set to -inf."""
    seq, ts = batch
    h = model.net_.encode(seq[:, :-1], ts[:, :-1] if model.uses_timestamps else None)
    mask = seq[:, 1:] > 0
    h, pos = h[mask], seq[:, 1:][mask]
    emb = model.net_.item_embeddings()
    if model.net_.l2_norm:
        h, emb = F.normalize(h, dim=-1), F.normalize(emb, dim=-1)
    logits = h @ emb.T / model.net_.temperature
    logits[:, 0] = -torch.inf
    return F.cross_entropy(logits, pos)


def blocks_loss(model, batch, rows=256):
    """The loss as of e24d864: autograd over blocks of 256 rows of the logits (log_softmax + nll_loss each)."""
    seq, ts = batch
    h = model.net_.encode(seq[:, :-1], ts[:, :-1] if model.uses_timestamps else None)
    mask = seq[:, 1:] > 0
    h, pos = h[mask], seq[:, 1:][mask] - 1
    emb = model.net_.item_embeddings()[1:]
    if model.net_.l2_norm:
        h, emb = F.normalize(h, dim=-1), F.normalize(emb, dim=-1)
    h = h / model.net_.temperature
    total = sum(
        F.cross_entropy(h[i : i + rows] @ emb.T, pos[i : i + rows], reduction="sum") for i in range(0, len(h), rows)
    )
    return total / len(h)


def pairwise_step_diversity(x, emb):
    """ERL's diversity term as the reference writes it: every ordered pair's KL(p_j || p_i), p_i detached."""
    logp = F.log_softmax(x @ emb.T, dim=-1)  # (B, S, N)
    kl = (logp.exp()[:, None] * (logp[:, None] - logp.detach()[:, :, None])).sum(-1)  # (B, S, S)
    off = ~torch.eye(x.shape[1], dtype=torch.bool, device=x.device)
    return kl[:, off].mean()


def fused_pairwise_kl_loss(model, batch):
    """The loss of today with ERL's diversity term in the pairwise form (as it was before the fused term)."""
    from recgen.models.sequential import reasoning
    from recgen.ops.softmax_ce import fused_softmax_ce

    def erl(x, emb, targets, kl):  # the steps' cross-entropies apart, as they were then
        steps = sum(fused_softmax_ce(x[:, k], emb, targets) for k in range(1, x.shape[1]))
        return steps - kl * pairwise_step_diversity(x, emb)

    real, reasoning.erl_loss = reasoning.erl_loss, erl
    try:
        return model._loss(batch)[0]
    finally:
        reasoning.erl_loss = real


class _RecomputeCE(torch.autograd.Function):
    """``recgen.ops.softmax_ce``'s cross-entropy as of commit 287a976: the forward pass keeps each row's
    log-sum-exp only and the backward pass makes every block of logits again."""

    @staticmethod
    def forward(ctx, h, emb, targets, rows):
        lse = torch.empty(len(h), dtype=h.dtype)
        for i in range(0, len(h), rows):
            lse[i : i + rows] = torch.logsumexp(h[i : i + rows] @ emb.T, dim=1)
        ctx.save_for_backward(h, emb, targets, lse)
        ctx.rows = rows
        return (lse - (h * emb[targets]).sum(-1)).mean()

    @staticmethod
    def backward(ctx, grad):
        h, emb, targets, lse = ctx.saved_tensors
        scale = grad / len(h)
        grad_h, grad_emb = torch.empty_like(h), torch.zeros_like(emb)
        for i in range(0, len(h), ctx.rows):
            block = (h[i : i + ctx.rows] @ emb.T).sub_(lse[i : i + ctx.rows, None]).exp_()
            block[torch.arange(len(block)), targets[i : i + ctx.rows]] -= 1.0
            block.mul_(scale)
            torch.mm(block, emb, out=grad_h[i : i + ctx.rows])
            grad_emb.addmm_(block.T, h[i : i + ctx.rows])
        return grad_h, grad_emb, None, None


def fused_287a976_loss(model, batch):
    """The loss as of commit 287a976: the cross-entropy's backward pass made its logits again, and ERL's steps each
    had their own cross-entropy beside the fused diversity term (before ``recgen.ops.softmax_ce.fused_erl_loss``)."""
    from recgen.models.sequential import next_item, reasoning
    from recgen.ops.softmax_ce import ROWS, fused_step_diversity

    def ce(h, emb, targets):
        return _RecomputeCE.apply(h, emb, targets, ROWS)

    def erl(x, emb, targets, kl):
        steps = sum(ce(x[:, k], emb, targets) for k in range(1, x.shape[1]))
        return steps - kl * fused_step_diversity(x, emb)

    saved = next_item.fused_softmax_ce, reasoning.erl_loss
    next_item.fused_softmax_ce, reasoning.erl_loss = ce, erl
    try:
        return model._loss(batch)[0]
    finally:
        next_item.fused_softmax_ce, reasoning.erl_loss = saved


def fused_bf16_loss(model, batch):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return model._loss(batch)[0]


VARIANTS = {
    "one_matrix": one_matrix_loss,
    "blocks": blocks_loss,
    "fused": lambda m, b: m._loss(b)[0],
    "fused_bf16": fused_bf16_loss,
    "fused_pairwise_kl": fused_pairwise_kl_loss,
    "fused_287a976": fused_287a976_loss,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="beauty,sports,yelp")
    ap.add_argument("--models", default="sasrec,hstu")
    ap.add_argument("--variants", default="blocks,fused,fused_bf16", help=f"comma-separated, of {sorted(VARIANTS)}")
    ap.add_argument("--optimizer", action="store_true", help="whole steps: clip and AdamW after backward")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="model config KEY=VALUE (repeatable)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.datasets.split(","):
        split = leave_one_out(load_dataset(name))
        for model_name in args.models.split(","):
            model, captured = untrained(model_name, split.train, **{"dropout": 0.5, **parse_sets(args.sets)})
            gen = torch.Generator().manual_seed(0)
            batches = [b for _, b in zip(range(args.steps), captured["batches"](1, gen), strict=False)]
            variants, nets, opts = {}, {}, {}
            for k in args.variants.split(","):
                form, _, adam = k.partition("+")
                m = copy.deepcopy(model) if args.optimizer else model
                m.net_.train()
                variants[k] = lambda b, m=m, f=VARIANTS[form]: f(m, b)
                nets[k] = m.net_
                if args.optimizer:
                    opts[k] = torch.optim.AdamW(m.net_.parameters(), lr=1e-3, fused=adam == "fused_adamw" or None)
            times = {k: [] for k in variants}
            losses = {}
            for _ in range(args.rounds):
                for label, fn in variants.items():
                    torch.manual_seed(0)  # same dropout masks for both
                    t0 = time.perf_counter()
                    total = 0.0
                    for b in batches:
                        loss = fn(b)
                        nets[label].zero_grad(set_to_none=True)
                        loss.backward()
                        if args.optimizer:
                            torch.nn.utils.clip_grad_norm_(nets[label].parameters(), 1.0)
                            opts[label].step()
                        total += loss.item()
                    times[label].append((time.perf_counter() - t0) / len(batches))
                    losses[label] = total / len(batches)
            row = {
                "dataset": name,
                "model": model_name,
                "n_items": split.train.n_items,
                "batch_size": model.config.batch_size,
                "config": parse_sets(args.sets),
                "mean_positions_per_batch": sum(int((b[0][:, 1:] > 0).sum()) for b in batches) / len(batches),
                **{f"{k}_step_ms": 1000 * statistics.median(v) for k, v in times.items()},
                **{f"{k}_mean_loss": losses[k] for k in variants},
            }
            first = next(iter(variants))
            row["speedup"] = {k: row[f"{first}_step_ms"] / row[f"{k}_step_ms"] for k in variants}
            rows.append(row)
            print(f"{name} {model_name}: " + ", ".join(f"{k} {row[f'{k}_step_ms']:.0f} ms" for k in variants))
    save(
        "train_step_speed",
        args.out,
        rows=rows,
        steps=args.steps,
        rounds=args.rounds,
        variants=args.variants,
        optimizer=args.optimizer,
    )


if __name__ == "__main__":
    main()
