"""Training-step speed on a CPU with dropout masks drawn by ``recgen.ops.dropout`` (one 64-bit draw per four
elements) against torch's ``F.dropout`` (one Bernoulli draw per element, what the models used before), and
without dropout for reference, on real batches of a dataset, one thread: TIGER at the reduced CPU size and the
paper's size (dropout 0.1). (SASRec-CE and HSTU keep torch's dropout: with the cheap mask swapped in, a Beauty
step at dropout 0.5 took the same time, dropout being under 10% of it beside the full-softmax loss.)

    PYTHONPATH=src RECGEN_DATA_DIR=../shared/datasets python benchmarks/dropout_speed.py \
        --out benchmarks/results/speed/dropout_cpu.json

The reference variant runs the same graph with every mask drawn by ``F.dropout`` (the attention weights too, as
``scaled_dot_product_attention``'s math path did with ``dropout_p``); ``no_dropout`` is the same batches with
dropout 0 (SDPA's fused CPU kernel). TIGER's item codes: residual k-means over an SVD of the training matrix
(quick to fit; the code levels, not their meaning, set the step's cost). Variants alternate (A B C A B C ...) so
that other load hits all alike; each figure is the median over rounds of the mean forward + backward time over
``--steps`` batches.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from speedlib import save, untrained

import recgen.ops.dropout as dropout_module
from recgen.data.loaders import load_dataset
from recgen.data.split import leave_one_out

RUNS = {
    "tiger_reduced": ("tiger", dict(tokenizer="rqkmeans", embeddings="svd")),
    "tiger_paper": (
        "tiger",
        dict(
            tokenizer="rqkmeans", embeddings="svd", d_model=128, encoder_layers=4, decoder_layers=4, n_heads=6,
            head_dim=64, ffn_dim=1024,
        ),
    ),
}  # fmt: skip


def torch_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    return F.dropout(x, p, training)


def use(fn) -> None:
    dropout_module.dropout = fn  # what recgen.ops.dropout's Dropout modules and attention call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cheap = dropout_module.dropout
    split = leave_one_out(load_dataset(args.dataset))
    rows = []
    for run in args.runs.split(","):
        name, config = RUNS[run]
        model, captured = untrained(name, split.train, **config)
        gen = torch.Generator().manual_seed(0)
        batches = [b for _, b in zip(range(args.steps), captured["batches"](1, gen), strict=False)]
        net, p = model.net_, model.config.dropout
        variants = {"torch_dropout": (torch_dropout, p), "cheap_mask": (cheap, p), "no_dropout": (cheap, 0.0)}
        times = {k: [] for k in variants}
        losses = {}
        net.train()
        for _ in range(args.rounds):
            for label, (fn, rate) in variants.items():
                use(fn)
                for m in net.modules():
                    if isinstance(m, torch.nn.Dropout):
                        m.p = rate
                    elif isinstance(getattr(m, "dropout", None), float):  # attention modules' weight dropout
                        m.dropout = rate
                torch.manual_seed(0)
                t0 = time.perf_counter()
                total = 0.0
                for b in batches:
                    loss = model._loss(b)[0]
                    net.zero_grad(set_to_none=True)
                    loss.backward()
                    total += loss.item()
                times[label].append((time.perf_counter() - t0) / len(batches))
                losses[label] = total / len(batches)
        use(cheap)
        row = {
            "dataset": args.dataset,
            "run": run,
            "model": name,
            "config": config,
            "dropout": p,
            "batch_size": model.config.batch_size,
            **{f"{k}_step_ms": 1000 * statistics.median(v) for k, v in times.items()},
            **{f"{k}_mean_loss": losses[k] for k in variants},
        }
        row["speedup"] = row["torch_dropout_step_ms"] / row["cheap_mask_step_ms"]
        rows.append(row)
        print(
            f"{args.dataset} {run}: F.dropout {row['torch_dropout_step_ms']:.0f} ms, cheap mask "
            f"{row['cheap_mask_step_ms']:.0f} ms ({row['speedup']:.2f}x), no dropout {row['no_dropout_step_ms']:.0f} ms"
        )
    save("dropout_speed", args.out, rows=rows, steps=args.steps, rounds=args.rounds)


if __name__ == "__main__":
    main()
