"""Inference cost of ReaRec's latent reasoning against K, measured in one process as ratios.

For each base model (SASRec-CE, HSTU) and each K, a model is fitted for one epoch (the cost of scoring does not
depend on the weights), then every test user of the dataset is scored ``--repeats`` times with the K values
interleaved (K = 0, 1, 2, 3, 0, 1, ... so that load on the machine falls on every K alike); the median seconds per
repeat give milliseconds per user and the ratio to K = 0 of the same base model.

    PYTHONPATH=src RECGEN_DATA_DIR=../shared/datasets python benchmarks/reasoning_cost.py -d ml-100k \\
        --set max_seq_len=50 --out benchmarks/results/reasoning/ml-100k__reasoning_cost.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedlib import save  # noqa: E402

from recgen.config import parse_sets  # noqa: E402
from recgen.data.loaders import load_dataset  # noqa: E402
from recgen.data.split import leave_one_out  # noqa: E402
from recgen.models import create_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-d", "--dataset", default="ml-100k")
    ap.add_argument("--models", default="sasrec,hstu")
    ap.add_argument("--ks", default="0,1,2,3")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256, help="users scored per call")
    ap.add_argument("--set", action="append", default=[], help="model config KEY=VALUE")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    split = leave_one_out(load_dataset(args.dataset))
    test = split.test
    users = np.asarray(test.user_ids)
    hists = test.histories(slice(None))
    times = test.history_times(slice(None))
    ks = [int(k) for k in args.ks.split(",")]
    sets = parse_sets(args.set)
    # K = 0 is the plain model: the reasoning fields of --set (e.g. reason_scheme=prl) do not apply to it
    plain = {key: v for key, v in sets.items() if not key.startswith("reason_")}
    rows = []
    for name in args.models.split(","):
        models = {
            k: create_model(name, epochs=1, eval_every=1, reason_steps=k, **(sets if k else plain)).fit(split.train)
            for k in ks
        }
        per_k: dict[int, list[float]] = {k: [] for k in ks}
        for _ in range(args.repeats):
            for k in ks:
                t0 = time.perf_counter()
                for s in range(0, len(users), args.batch):
                    ts = times[s : s + args.batch] if times is not None else None
                    models[k].score(users[s : s + args.batch], hists[s : s + args.batch], ts)
                per_k[k].append(time.perf_counter() - t0)
        base = statistics.median(per_k[ks[0]])
        for k in ks:
            med = statistics.median(per_k[k])
            rows.append(
                {
                    "model": name,
                    "reason_steps": k,
                    "ms_per_user": 1000 * med / len(users),
                    "ratio_to_k0": med / base,
                    "repeats_seconds": per_k[k],
                }
            )
            print(rows[-1]["model"], k, f"{rows[-1]['ms_per_user']:.3f} ms/user, x{rows[-1]['ratio_to_k0']:.2f}")
    save(
        "reasoning_cost", args.out, schema="recgen-reasoning-cost/1", dataset=args.dataset, users=len(users),
        batch=args.batch, config=sets, rows=rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
