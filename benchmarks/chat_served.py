"""The same scripted conversation (``recgen demo``'s three messages) with the LLM dialogue manager on the embedded
llama.cpp model and on an OpenAI-compatible server (a real ``llama_cpp.server`` started here on loopback; pass
``--url`` to use a server of your own, e.g. a larger model), over EASE fitted on ML-100K.

Per turn: what the user said, the reply shown, the items shown (ids resolved in the catalogue), the LLM sentences
withheld (they named something outside the chosen items), and the items that are not catalogue items (must be 0).

    python benchmarks/chat_served.py --out benchmarks/results/tasks/ml-100k__chat-served.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from typing import Any

from recgen.cli.tasks import DEMO_MESSAGES
from recgen.data.loaders import load_dataset
from recgen.experiments.results import git_commit, provenance, write_json
from recgen.llm import load_llm
from recgen.models.registry import create_model
from recgen.tasks.catalog import Catalog
from recgen.tasks.chat import ChatSession


def converse(model, catalog: Catalog, llm, user: str) -> dict[str, Any]:
    session = ChatSession(model, user=user, llm=llm, max_questions=0)
    turns, t0 = [], time.perf_counter()
    for text in DEMO_MESSAGES:
        reply = session.respond(text)
        shown = [str(it["item_id"]) for it in reply.items]
        turns.append({
            "user": text, "reply": reply.text, "action": reply.action, "items": shown,
            "out_of_catalogue": sum(i not in catalog.index for i in shown),
            "withheld": reply.withheld, "relaxed": reply.relaxed,
        })  # fmt: skip
    return {"llm": llm.info(), "turns": turns, "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--user", default="5")
    ap.add_argument("--url", default=None, help="an OpenAI-compatible server of your own (default: start one)")
    ap.add_argument("--out", default="benchmarks/results/tasks/ml-100k__chat-served.json")
    args = ap.parse_args()
    commit = git_commit()
    ds = load_dataset("ml-100k")
    model = create_model("ease").fit(ds)
    catalog = Catalog.from_model(model)
    runs = [converse(model, catalog, load_llm("llamacpp:smollm2"), args.user)]
    with ExitStack() as stack:
        url = args.url
        if url is None:
            from recgen.llm.files import embedded_model_path
            from recgen.testing.llama_server import llama_servers

            folder = stack.enter_context(tempfile.TemporaryDirectory())
            url = stack.enter_context(llama_servers(embedded_model_path(), folder))[0].url
        runs.append(converse(model, catalog, load_llm(f"openai:{url}"), args.user))
    for r in runs:
        print(f"== {r['llm']['backend']} {r['llm'].get('model')}")
        for t in r["turns"]:
            print(f"user: {t['user']}\nrecgen: {t['reply']}\n")
    titles = {i: catalog.titles[catalog.dense(i)] for r in runs for t in r["turns"] for i in t["items"]}
    result = {"schema": "recgen-task/1", "task": "chat-served", "dataset": ds.name, "model": "ease",
              "user": args.user, "runs": runs, "titles": titles,
              **provenance(commit, "python " + " ".join(sys.argv))}  # fmt: skip
    print("results:", write_json(result, args.out))


if __name__ == "__main__":
    main()
