"""Whole-step CPU speed with ``recgen.ops.allocator.keep_freed_memory`` (freed tensor memory kept in the process)
against glibc's default settings (``RECGEN_MALLOC=default``): a TIGER training step (forward, backward, AdamW) at
the reduced CPU size, TIGER's beam-20 search through the evaluator, and a SASRec-CE training step, on real
batches of a dataset, one thread.

    PYTHONPATH=src RECGEN_DATA_DIR=../shared/datasets python benchmarks/allocator_speed.py \
        --out benchmarks/results/speed/allocator_cpu.json

Each measurement is its own process (the allocator is set once per process), the two settings alternating
(A B A B ...) so that other load hits both alike; a process times ``--steps`` steps after two warm-up steps. The
figures are medians over ``--rounds``, with the processes' user and system CPU seconds (page faults show as
system time).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

KINDS = ("tiger_train", "tiger_decode", "sasrec_train")


def worker(kind: str, dataset: str, steps: int) -> dict[str, float]:
    from recgen.ops.allocator import keep_freed_memory

    applied = keep_freed_memory()
    import numpy as np
    import torch
    from speedlib import untrained

    from recgen.data.loaders import load_dataset
    from recgen.data.split import leave_one_out
    from recgen.eval.evaluator import evaluate

    torch.set_num_threads(1)
    split = leave_one_out(load_dataset(dataset))
    name = "sasrec" if kind.startswith("sasrec") else "tiger"
    config = dict(tokenizer="rqkmeans", embeddings="svd") if name == "tiger" else dict(dropout=0.5)
    model, captured = untrained(name, split.train, **config)
    if kind == "tiger_decode":
        test = split.test.select(np.arange(64 * (steps + 2)))
        evaluate(model, test.select(np.arange(128)), ks=(10,), batch_size=64)  # warm-up
        t0 = time.perf_counter()
        evaluate(model, test, ks=(10,), batch_size=64)
        return {"seconds_per_step": (time.perf_counter() - t0) / (steps + 2), "applied": applied}
    net = model.net_
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    batches = [b for _, b in zip(range(steps + 2), captured["batches"](1, gen), strict=False)]
    net.train()
    torch.manual_seed(0)

    def step(b) -> None:
        loss = captured["loss_fn"](b)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for b in batches[:2]:
        step(b)
    t0 = time.perf_counter()
    for b in batches[2:]:
        step(b)
    return {"seconds_per_step": (time.perf_counter() - t0) / steps, "applied": applied}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.dataset, args.steps)))
        return
    from speedlib import save

    settings = {"kept": {}, "glibc_default": {"RECGEN_MALLOC": "default"}}
    rows = []
    for kind in args.kinds.split(","):
        runs: dict[str, list[dict[str, float]]] = {s: [] for s in settings}
        for _ in range(args.rounds):
            for label, env in settings.items():
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", kind, "--dataset", args.dataset, "--steps", str(args.steps)],
                    env={**os.environ, **env},
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                r = json.loads(out.strip().splitlines()[-1])
                r["user_s"], r["sys_s"] = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
                runs[label].append(r)
        row = {"kind": kind, "dataset": args.dataset}
        for label, rs in runs.items():
            row[f"{label}_ms_per_step"] = 1000 * statistics.median(r["seconds_per_step"] for r in rs)
            row[f"{label}_process_user_s"] = statistics.median(r["user_s"] for r in rs)
            row[f"{label}_process_sys_s"] = statistics.median(r["sys_s"] for r in rs)
            row[f"{label}_applied"] = rs[0]["applied"]
        row["speedup"] = row["glibc_default_ms_per_step"] / row["kept_ms_per_step"]
        rows.append(row)
        print(
            f"{kind}: glibc default {row['glibc_default_ms_per_step']:.0f} ms "
            f"(sys {row['glibc_default_process_sys_s']:.1f} s), "
            f"kept {row['kept_ms_per_step']:.0f} ms (sys {row['kept_process_sys_s']:.1f} s), {row['speedup']:.2f}x"
        )
    if args.out:
        save("allocator_speed", args.out, rows=rows, steps=args.steps, rounds=args.rounds)


if __name__ == "__main__":
    main()
