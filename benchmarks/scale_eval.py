"""Catalogue-scale evaluation: peak memory and users/s of full-catalogue ranking at growing sizes, on seeded
synthetic data (power-law popularity, session structure: ``recgen.testing.synthetic.make_scale_dataset``;
labelled synthetic in every row).

For each size and model a worker process (so that its peak resident memory is its own) builds the data, splits it
leave-one-out, fits the model, and ranks the whole catalogue for ``--eval-users`` seeded test users, a block of
``--item-block`` items at a time (``evaluate(..., item_block=)``; EASE ranks whole rows: its dense (N+1)^2 weights
dwarf a batch's scores); where the (batch x catalogue) score matrix is
small enough it also ranks whole rows, for the memory the blocks save. The resident high-water mark is read after
the data, after fitting and after each evaluation. Models that cannot fit a size say why (EASE's dense item-item
matrix, ItemKNN's co-occurrence matrix) instead of running out of memory. SASRec and HSTU train one epoch with a
sampled softmax (256 negatives) on ``--train-users`` users' sequences: the figures are the cost of ranking, and
their metrics are not those of trained models.

    PYTHONPATH=src python benchmarks/scale_eval.py --sizes 1M:100k,10M:300k,50M:1M \\
        --out benchmarks/results/scale/scale_eval.json --plot benchmarks/scale-eval.png
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedlib import save  # noqa: E402

NEURAL = {"sasrec", "hstu"}
NET = {"embedding_dim": 64, "n_layers": 2, "n_heads": 2, "max_seq_len": 50, "loss": "sampled", "epochs": 1}


def parse_size(text: str) -> int:
    mult = {"k": 1_000, "M": 1_000_000}
    return int(float(text[:-1]) * mult[text[-1]]) if text[-1] in mult else int(text)


def worker(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from recgen.data.split import leave_one_out
    from recgen.errors import RecgenError
    from recgen.eval.evaluator import evaluate
    from recgen.memory import peak_rss_mb
    from recgen.models import create_model
    from recgen.testing.synthetic import make_scale_dataset

    torch.set_num_threads(1)
    row: dict = {"model": args.model}
    t = time.perf_counter()
    ds = make_scale_dataset(args.interactions, args.items, seed=0)
    split = leave_one_out(ds)
    rng = np.random.default_rng(0)
    test = split.test.select(np.sort(rng.choice(len(split.test), min(args.eval_users, len(split.test)), False)))
    row.update(
        dataset=ds.name, synthetic=True, interactions=ds.n_interactions, items=ds.n_items, users=ds.n_users,
        data_seconds=time.perf_counter() - t, rss_after_data_mb=peak_rss_mb(),
    )  # fmt: skip
    train = split.train
    config: dict = {}
    if args.model in NEURAL:
        keep = np.isin(train.user_ids, np.arange(1, args.train_users + 1))
        train = train.subset(keep)  # same vocabularies: the model's catalogue is every item
        config = dict(NET, batch_size=128)
        row["trained_on"] = f"{args.train_users} users' sequences, 1 epoch, sampled softmax (256 negatives)"
    elif args.model == "itemknn":
        config = {"k": 100}
    model = create_model(args.model, **config)
    t = time.perf_counter()
    try:
        model.fit(train)
    except (RecgenError, MemoryError) as e:
        row.update(stops=str(e).splitlines()[0], peak_rss_mb=peak_rss_mb())
        return row
    row.update(
        fit_seconds=time.perf_counter() - t, rss_after_fit_mb=peak_rss_mb(),
        ranking="item blocks" if model.streams_scores else "whole rows",
    )  # fmt: skip
    evaluate(model, test.select(np.arange(1)), ks=(10,))  # warm-up: lazy inference copies are made outside timing
    r = evaluate(model, test, ks=(10,), batch_size=args.batch, item_block=args.item_block)
    row.update(
        eval_users=r.n_users, streamed_users_per_second=r.users_per_second, rss_after_streamed_mb=peak_rss_mb(),
        recall_at_10=r.metrics["recall@10"], ndcg_at_10=r.metrics["ndcg@10"],
    )  # fmt: skip
    whole_bytes = args.batch * (ds.n_items + 1) * 8
    if whole_bytes <= args.whole_row_limit_mb * 2**20 and model.streams_scores:
        w = evaluate(model, test, ks=(10,), batch_size=args.batch)
        row.update(
            whole_users_per_second=w.users_per_second, rss_after_whole_mb=peak_rss_mb(),
            whole_equals_streamed=bool(w.metrics == r.metrics),
        )  # fmt: skip
    else:
        row["whole_rows_skipped"] = f"a batch's score matrix would be {whole_bytes / 2**30:.1f} GiB (float64)"
    row["peak_rss_mb"] = peak_rss_mb()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1M:100k,10M:300k,50M:1M", help="interactions:items, comma-separated")
    ap.add_argument("--models", default="pop,itemknn,ease,sasrec,hstu")
    ap.add_argument("--eval-users", type=int, default=1000)
    ap.add_argument("--train-users", type=int, default=20000)
    ap.add_argument("--item-block", type=int, default=65536)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--whole-row-limit-mb", type=float, default=1024.0)
    ap.add_argument("--out")
    ap.add_argument("--plot")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--interactions", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--items", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print("ROW " + json.dumps(worker(args)), flush=True)
        return
    rows = []
    for size in args.sizes.split(","):
        inter, items = (parse_size(x) for x in size.split(":"))
        for model in args.models.split(","):
            cmd = [sys.executable, __file__, "--worker", "--model", model, "--interactions", str(inter),
                   "--items", str(items)] + [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in
                   ("eval_users", "train_users", "item_block", "batch", "whole_row_limit_mb")]  # fmt: skip
            t = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            found = [ln[4:] for ln in p.stdout.splitlines() if ln.startswith("ROW ")]
            row = json.loads(found[-1]) if found else {
                "model": model, "interactions": inter, "items": items,
                "stops": f"the worker exited {p.returncode}: {(p.stderr.strip().splitlines() or ['?'])[-1]}",
            }  # fmt: skip
            row["worker_seconds"] = time.perf_counter() - t
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        save("scale_eval", args.out, schema="recgen-scale/1", rows=rows, synthetic=True, sizes=args.sizes,
             item_block=args.item_block, eval_batch=args.batch, eval_users=args.eval_users,
             train_users=args.train_users)  # fmt: skip
    if args.plot:
        plot(rows, args.plot)


def plot(rows: list[dict], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for model in sorted({r["model"] for r in rows}):
        pts = sorted((r["interactions"], r) for r in rows if r["model"] == model and "stops" not in r)
        if not pts:
            continue
        x = [p[0] for p in pts]
        axes[0].plot(x, [p[1]["peak_rss_mb"] for p in pts], marker="o", label=model)
        axes[1].plot(x, [p[1]["streamed_users_per_second"] for p in pts], marker="o", label=model)
    for ax, label in zip(axes, ("peak resident memory (MB)", "users/s, full ranking in item blocks"), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("interactions (synthetic; items grow with them)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("catalogue-scale evaluation, synthetic data, one thread per process")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"plot: {out}")


if __name__ == "__main__":
    main()
