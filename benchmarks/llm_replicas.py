"""Profile generation on the embedded LLM: one llama.cpp model using every core against one copy per core side by
side (``recgen augment profiles --workers N``), on the item-profile prompts of ``recgen augment profiles``.

Each layout writes the same prompts' profiles through ``run_batch`` into its own work file; the layouts alternate in
rounds (so load on the machine falls on both alike), and the outputs are compared profile for profile. Run it on an
otherwise idle machine: copies side by side only pay when the cores are free.

    PYTHONPATH=src RECGEN_DATA_DIR=../shared/datasets python benchmarks/llm_replicas.py -d ml-100k --items 40 \\
        --out benchmarks/results/speed/llm_replicas.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedlib import save  # noqa: E402

from recgen.data.augment.profiles import ITEM_SCHEMA, item_jobs  # noqa: E402
from recgen.data.loaders import load_dataset  # noqa: E402
from recgen.llm import load_llm  # noqa: E402
from recgen.llm.batch import recover_jsonl, run_batch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-d", "--dataset", default="ml-100k")
    ap.add_argument("--items", type=int, default=40, help="the first N items' profile prompts")
    ap.add_argument("--rounds", type=int, default=4, help="the items are split into this many alternating rounds")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    jobs = item_jobs(load_dataset(args.dataset))[: args.items]
    layouts = {
        f"1 copy x {args.cores} threads": [load_llm("llamacpp:smollm2", n_threads=args.cores)],
        f"{args.cores} copies x 1 thread": [load_llm("llamacpp:smollm2", n_threads=1) for _ in range(args.cores)],
    }
    secs = dict.fromkeys(layouts, 0.0)
    toks = dict.fromkeys(layouts, 0)
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.rounds):
            part = jobs[k :: args.rounds]
            for name in list(layouts)[k % 2 :] + list(layouts)[: k % 2]:
                s = run_batch(layouts[name], part, Path(tmp) / f"{name}.jsonl", max_tokens=args.max_tokens,
                              json_schema=ITEM_SCHEMA, workers=len(layouts[name]))  # fmt: skip
                secs[name] += s["seconds"]
                toks[name] += s["completion_tokens"]
                print(f"round {k + 1}: {name} {s['completion_tokens'] / s['seconds']:.1f} tok/s", flush=True)
        texts = [{r["id"]: r.get("text") for r in recover_jsonl(Path(tmp) / f"{n}.jsonl")} for n in layouts]
    same = sum(texts[0][i] == texts[1].get(i) for i in texts[0])
    first = next(iter(layouts))
    rows = [{"layout": n, "copies": len(layouts[n]), "threads_each": layouts[n][0].n_threads, "seconds": secs[n],
             "completion_tokens": toks[n], "tokens_per_second": toks[n] / secs[n],
             "speedup": secs[first] / secs[n]} for n in layouts]  # fmt: skip
    for llms in layouts.values():
        for llm in llms:
            llm.close()
    save("llm_replicas", args.out, schema="recgen-llm-replicas/1", dataset=args.dataset, prompts=len(jobs),
         max_tokens=args.max_tokens, cores=args.cores, identical_outputs=same, rows=rows)  # fmt: skip


if __name__ == "__main__":
    main()
