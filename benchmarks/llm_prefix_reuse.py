"""Seconds per yes/no question with llama.cpp scoring, prompts sharing a persona: the prefix reused in fixed
chunks (what recgen does) against a fresh evaluation of every prompt, and whether the numbers are identical.

    python benchmarks/llm_prefix_reuse.py --out benchmarks/results/speed/llm_prefix_reuse.json
"""

from __future__ import annotations

import argparse
import sys
import time

from recgen.experiments.results import git_commit, provenance, write_json
from recgen.llm import load_llm

PERSONA = (
    "You are a user of a recommendation site (activity high, conformity low, diversity medium). You liked: Star "
    "Wars (1977; Action, Adventure, Romance, Sci-Fi, War); Fargo (1996; Crime, Drama, Thriller); Contact (1997; "
    "Drama, Sci-Fi). You disliked: nothing in particular.\nWould you watch {}? Answer Yes or No.\nAnswer:"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=40)
    ap.add_argument("--out", default="benchmarks/results/speed/llm_prefix_reuse.json")
    args = ap.parse_args()
    commit = git_commit()
    llm = load_llm("llamacpp:smollm2")
    prompts = [PERSONA.format(f"Movie number {i} (1997; Drama)") for i in range(args.questions)]
    llm.next_token_logprobs(prompts[0], [" Yes", " No"])  # warm up
    t0 = time.perf_counter()
    reused = [llm.next_token_logprobs(p, [" Yes", " No"]) for p in prompts]
    t_reuse = (time.perf_counter() - t0) / len(prompts)
    fresh = []
    t0 = time.perf_counter()
    for p in prompts:
        llm._held = []  # nothing reused
        fresh.append(llm.next_token_logprobs(p, [" Yes", " No"]))
    t_fresh = (time.perf_counter() - t0) / len(prompts)
    row = {"questions": len(prompts), "prompt_tokens": len(llm._tokens(prompts[0], True)), "chunk": llm.CHUNK,
           "threads": llm.n_threads, "seconds_per_question_reused": t_reuse, "seconds_per_question_fresh": t_fresh,
           "speedup": t_fresh / t_reuse, "identical": reused == fresh}  # fmt: skip
    print(row)
    write_json({"schema": "recgen-speed/1", "task": "llm-prefix-reuse", "llm": llm.info(), "rows": [row],
                **provenance(commit, "python " + " ".join(sys.argv))}, args.out)  # fmt: skip


if __name__ == "__main__":
    main()
