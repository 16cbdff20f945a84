"""Batched greedy generation on the embedded model (``LLM.chat_many``: several sequences in one llama.cpp batch)
against one at a time (``LLM.chat``), on the item-profile prompts of ``recgen augment profiles``.

For each batch width, the prompts are generated one at a time and in batches of that width, in alternating order
(which goes first changes per round, so load on the machine falls on both alike), then once more in batches of
the prompts shuffled (other neighbours in every batch). Recorded: seconds and completion tokens/s of each, how many
outputs are identical to one-at-a-time's, and how many are identical when regrouped.

    PYTHONPATH=src RECGEN_DATA_DIR=../shared/datasets python benchmarks/batched_decoding.py -d beauty --items 32 \\
        --widths 8,16 --out benchmarks/results/speed/batched_decoding.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedlib import save  # noqa: E402

from recgen.data.augment.profiles import ITEM_SCHEMA, item_jobs  # noqa: E402
from recgen.data.loaders import load_dataset  # noqa: E402
from recgen.llm.llamacpp import LlamaCppLLM  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-d", "--dataset", default="beauty")
    ap.add_argument("--items", type=int, default=32, help="N items' profile prompts (from the middle of the catalogue)")
    ap.add_argument("--widths", default="8,16", help="batch widths, comma-separated")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    llm = LlamaCppLLM(n_threads=args.threads)  # no response cache: every call generates
    jobs = item_jobs(load_dataset(args.dataset))
    convs = [j["prompt"] for j in jobs[len(jobs) // 2 : len(jobs) // 2 + args.items]]
    kw = {"max_tokens": args.max_tokens, "json_schema": ITEM_SCHEMA}
    rows = []
    for r, width in enumerate(int(w) for w in args.widths.split(",")):
        secs = {}

        def one_at_a_time() -> list:
            return [llm.chat(c, **kw) for c in convs]

        def batched(order: np.ndarray, width: int = width) -> list:
            out: list = [None] * len(convs)
            for at in range(0, len(order), width):
                group = order[at : at + width]
                for i, g in zip(group, llm.chat_many([convs[i] for i in group], **kw), strict=True):
                    out[i] = g
            return out

        outs = {}
        for mode in ["one", "batched"] if r % 2 == 0 else ["batched", "one"]:
            t0 = time.perf_counter()
            outs[mode] = one_at_a_time() if mode == "one" else batched(np.arange(len(convs)))
            secs[mode] = time.perf_counter() - t0
        regrouped = batched(np.random.default_rng(width).permutation(len(convs)))
        tokens = {m: sum(g.completion_tokens for g in outs[m]) for m in outs}
        rows.append({
            "width": width,
            "one_at_a_time": {"seconds": secs["one"], "tokens_per_second": tokens["one"] / secs["one"]},
            "batched": {"seconds": secs["batched"], "tokens_per_second": tokens["batched"] / secs["batched"]},
            "speedup_tokens_per_second": (tokens["batched"] / secs["batched"]) / (tokens["one"] / secs["one"]),
            "identical_to_one_at_a_time": sum(
                a.text == b.text for a, b in zip(outs["one"], outs["batched"], strict=True)),
            "identical_when_regrouped": sum(a.text == b.text for a, b in zip(outs["batched"], regrouped, strict=True)),
            "completion_tokens": tokens["one"],
        })  # fmt: skip
        print({k: v for k, v in rows[-1].items() if not isinstance(v, dict)}, flush=True)
    llm.close()
    save("batched_decoding", args.out, dataset=args.dataset, prompts=len(convs), threads=args.threads, rows=rows)


if __name__ == "__main__":
    main()
