"""Training-step speed of SASRec-CE and HSTU on a CPU: the full-softmax loss as written before commit e24d864
(logits = h @ emb.T / tau, padding column set to -inf, one P x N matrix) against ``full_softmax_ce`` (temperature
on the queries, padding row left out, 256 rows at a time), on real batches of each dataset, one thread.

    PYTHONPATH=src RECGEN_DATA_DIR=../shared/datasets python benchmarks/train_step_speed.py \
        --out benchmarks/results/speed/train_step_cpu.json

The two variants alternate (A B A B ...) so that other load on the machine hits both alike; each figure is the
median over rounds of the mean step time over ``--steps`` batches. Loss values of both are recorded: they agree
up to float rounding.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from speedlib import save, untrained

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="beauty,sports,yelp")
    ap.add_argument("--models", default="sasrec,hstu")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.datasets.split(","):
        split = leave_one_out(load_dataset(name))
        for model_name in args.models.split(","):
            model, captured = untrained(model_name, split.train, dropout=0.5)
            gen = torch.Generator().manual_seed(0)
            batches = [b for _, b in zip(range(args.steps), captured["batches"](1, gen), strict=False)]
            variants = {
                "one_matrix": lambda b, m=model: one_matrix_loss(m, b),
                "full_softmax_ce": lambda b, m=model: m._loss(b)[0],
            }
            times = {k: [] for k in variants}
            losses = {}
            model.net_.train()
            for _ in range(args.rounds):
                for label, fn in variants.items():
                    torch.manual_seed(0)  # same dropout masks for both
                    t0 = time.perf_counter()
                    total = 0.0
                    for b in batches:
                        loss = fn(b)
                        model.net_.zero_grad(set_to_none=True)
                        loss.backward()
                        total += loss.item()
                    times[label].append((time.perf_counter() - t0) / len(batches))
                    losses[label] = total / len(batches)
            row = {
                "dataset": name,
                "model": model_name,
                "n_items": split.train.n_items,
                "batch_size": model.config.batch_size,
                "mean_positions_per_batch": sum(int((b[0][:, 1:] > 0).sum()) for b in batches) / len(batches),
                **{f"{k}_step_ms": 1000 * statistics.median(v) for k, v in times.items()},
                **{f"{k}_mean_loss": losses[k] for k in variants},
            }
            row["speedup"] = row["one_matrix_step_ms"] / row["full_softmax_ce_step_ms"]
            rows.append(row)
            print(
                f"{name} {model_name}: one matrix {row['one_matrix_step_ms']:.0f} ms, "
                f"full_softmax_ce {row['full_softmax_ce_step_ms']:.0f} ms per step ({row['speedup']:.2f}x)"
            )
    save("train_step_speed", args.out, rows=rows, steps=args.steps, rounds=args.rounds)


if __name__ == "__main__":
    main()
