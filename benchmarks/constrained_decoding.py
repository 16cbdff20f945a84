"""Greedy JSON-schema generation on the embedded LLM: the 32 likeliest tokens checked against the grammar first
(recgen's path), the likeliest one alone checked first (its earlier path), against the grammar applied to the whole
vocabulary at every step (the same loop, and llama-cpp-python's own sampler chain), on the item-profile prompts of
``recgen augment profiles``.

The four modes run on each prompt in turn (rotating which goes first, so load on the machine falls on all alike);
the outputs are compared token for token and the seconds, tokens/s and the share of steps that needed the full
check are recorded.

    PYTHONPATH=src RECGEN_DATA_DIR=../shared/datasets RECGEN_LLM_THREADS=1 python benchmarks/constrained_decoding.py \\
        -d ml-100k --items 40 --out benchmarks/results/speed/constrained_decoding.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedlib import save  # noqa: E402

from recgen.data.augment.profiles import ITEM_SCHEMA, item_jobs  # noqa: E402
from recgen.data.loaders import load_dataset  # noqa: E402
from recgen.llm import load_llm  # noqa: E402
from recgen.llm.base import make_params  # noqa: E402

MODES = ("top-32-first", "check-first", "full-mask", "library")
TOP = {"top-32-first": 32, "check-first": 1, "full-mask": 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-d", "--dataset", default="ml-100k")
    ap.add_argument("--items", type=int, default=40, help="the first N items' profile prompts")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    llm = load_llm("llamacpp:smollm2")
    params = make_params(max_tokens=args.max_tokens, json_schema=ITEM_SCHEMA)
    jobs = item_jobs(load_dataset(args.dataset))[: args.items]
    secs = dict.fromkeys(MODES, 0.0)
    toks = dict.fromkeys(MODES, 0)
    same = 0
    steps = {m: [0, 0] for m in TOP}  # steps, and those that masked the whole vocabulary
    for n, job in enumerate(jobs):
        messages = [{"role": "user", "content": job["prompt"]}]
        prompt = llm._llm.tokenize(llm.chat_prompt(messages).encode(), add_bos=False, special=True)
        texts = {}
        k = n % len(MODES)
        for mode in MODES[k:] + MODES[:k]:
            llm._llm.reset()
            t0 = time.perf_counter()
            if mode == "library":
                out = llm._llm.create_chat_completion(messages=messages, **llm._kwargs(params))
                texts[mode] = out["choices"][0]["message"]["content"]
                toks[mode] += out["usage"]["completion_tokens"]
            else:
                before = list(llm.grammar_steps)
                g = llm._greedy_constrained(prompt, params, top=TOP[mode])
                texts[mode] = g.text
                toks[mode] += g.completion_tokens
                steps[mode][0] += llm.grammar_steps[0] - before[0]
                steps[mode][1] += llm.grammar_steps[1] - before[1]
            secs[mode] += time.perf_counter() - t0
        same += len(set(texts.values())) == 1
        print(f"{n + 1}/{len(jobs)} " + " ".join(f"{m} {toks[m] / secs[m]:.1f} tok/s" for m in MODES), flush=True)
    rows = [{"mode": m, "seconds": secs[m], "completion_tokens": toks[m], "tokens_per_second": toks[m] / secs[m],
             "speedup_vs_library": secs["library"] / secs[m], "tokens_checked_first": TOP.get(m),
             "full_check_share": steps[m][1] / max(steps[m][0], 1) if m in TOP else None}
            for m in MODES]  # fmt: skip
    save(
        "constrained_decoding", args.out, schema="recgen-constrained-decoding/1", dataset=args.dataset,
        prompts=len(jobs), max_tokens=args.max_tokens, llm=llm.identity(), threads=llm.n_threads,
        identical_outputs=same, rows=rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
