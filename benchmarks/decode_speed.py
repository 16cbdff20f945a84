"""Recommending speed on a CPU: TIGER's beam search (beam 20, top-10; trie-constrained and free) at the reduced
CPU size and the paper's size, next to SASRec-CE's and HSTU's full-catalogue ranking, through the same evaluator
on the same test users of a dataset, one thread.

    PYTHONPATH=src RECGEN_DATA_DIR=../shared/datasets python benchmarks/decode_speed.py \
        --out benchmarks/results/speed/decode_cpu.json

The networks keep their initial weights: a forward pass and a beam search cost the same whatever the weights
(fixed beam width and code levels), so no training is needed to time them; the item codes are the real ones
(``--tokenizer``, fitted or read from the codes cache). Each figure is the median over ``--rounds`` of the
evaluator's users/s over ``--users`` test users (scoring + ranking + metrics), and for TIGER the beam search's own
ms per user; the variants alternate (A B C ... A B C) so that other load on the machine hits all alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from speedlib import save, untrained

from recgen.data.loaders import load_dataset
from recgen.data.split import leave_one_out
from recgen.eval.evaluator import evaluate

PAPER = dict(d_model=128, encoder_layers=4, decoder_layers=4, n_heads=6, head_dim=64, ffn_dim=1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="toys")
    ap.add_argument("--tokenizer", default="rqkmeans")
    ap.add_argument("--users", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    split = leave_one_out(load_dataset(args.dataset))
    test = split.test.select(np.arange(min(args.users, len(split.test))))
    tiger = dict(tokenizer=args.tokenizer, beam=20)
    variants = {
        "sasrec": untrained("sasrec", split.train)[0],
        "hstu": untrained("hstu", split.train)[0],
        "tiger_reduced_trie": untrained("tiger", split.train, **tiger)[0],
        "tiger_reduced_free": untrained("tiger", split.train, **tiger, constrained=False)[0],
        "tiger_paper_trie": untrained("tiger", split.train, **tiger, **PAPER)[0],
    }
    ups: dict[str, list[float]] = {k: [] for k in variants}
    ms: dict[str, list[float]] = {k: [] for k in variants if k.startswith("tiger")}
    for _ in range(args.rounds):
        for label, model in variants.items():
            if label in ms:
                model.reset_stats()
            t0 = time.perf_counter()
            evaluate(model, test, ks=(10,), batch_size=getattr(model, "eval_batch_size", 512))
            ups[label].append(len(test) / (time.perf_counter() - t0))
            if label in ms:
                ms[label].append(model.run_info()["stats"]["ms_per_user"])
    rows = []
    for label, model in variants.items():
        row = {
            "variant": label,
            "eval_users_per_second": statistics.median(ups[label]),
            "eval_batch_size": getattr(model, "eval_batch_size", 512),
        }
        if label in ms:
            row["beam_search_ms_per_user"] = statistics.median(ms[label])
            row.update(beam=model.config.beam, constrained=model.config.constrained, levels=model.level_sizes_)
            row.update(d_model=model.config.d_model, layers=[model.config.encoder_layers, model.config.decoder_layers])
        rows.append(row)
        extra = f", beam search {row['beam_search_ms_per_user']:.2f} ms/user" if label in ms else ""
        print(f"{label}: {row['eval_users_per_second']:.0f} users/s{extra}")
    save(
        "decode_speed",
        args.out,
        dataset=args.dataset,
        n_items=split.train.n_items,
        users=len(test),
        rounds=args.rounds,
        rows=rows,
    )


if __name__ == "__main__":
    main()
