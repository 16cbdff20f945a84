"""How fast simulated users run: agents per second with the embedded LLM in process, and against
OpenAI-compatible servers (llama-cpp-python's, serving the same model, started here on loopback), the
``llm+grounded`` decider with a reason for every decision (the LLM-heaviest setting). The README sizes a
1,000-agent run on ML-100K from these figures.

    python benchmarks/simulate_scale.py --agents 8 --out benchmarks/results/speed/simulate_scale.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from recgen.experiments.results import git_commit, provenance, write_json
from recgen.experiments.studies.sessions import run_simulation
from recgen.llm.files import embedded_model_path
from recgen.testing.llama_server import llama_servers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--servers", type=int, default=2, help="llama_cpp.server processes (1 thread each)")
    ap.add_argument("--out", default="benchmarks/results/speed/simulate_scale.json")
    args = ap.parse_args()
    commit = git_commit()
    gguf = embedded_model_path()
    tmp = Path(tempfile.mkdtemp(prefix="recgen-simscale-"))
    rows = []

    def measure(label: str, llm: list[str], workers: int) -> None:
        r = run_simulation(args.dataset, model="ease", n_agents=args.agents, decider="llm+grounded", llm=llm,
                           workers=workers, log_path=tmp / f"{len(rows)}.jsonl", log=print)  # fmt: skip
        rows.append({"label": label, "llm": llm, "workers": workers, "agents": r["agents"], "seconds": r["seconds"],
                     "agents_per_second": r["agents_per_second"], "llm_calls": r["llm_calls"]})  # fmt: skip
        print(rows[-1])

    measure("embedded SmolLM2 in process (llama.cpp, 2 threads)", ["llamacpp:smollm2"], 1)
    with llama_servers(gguf, tmp, n=args.servers) as servers:
        measure(f"the same model served: {args.servers} llama_cpp.server on loopback (1 thread each), "
                f"{args.servers} workers", [f"openai:{s.url}" for s in servers], args.servers)  # fmt: skip
    result = {"schema": "recgen-speed/1", "task": "simulate-scale", "dataset": args.dataset, "decider": "llm+grounded",
              "rows": rows, **provenance(commit, "python " + " ".join(sys.argv))}  # fmt: skip
    print(write_json(result, args.out))


if __name__ == "__main__":
    main()
