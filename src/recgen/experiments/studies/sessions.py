"""``recgen simulate run``: N simulated users browse one recommender's pages; every action and reason logged.

The recommender is fitted by the harness on the leave-one-out split (or loaded from a saved model folder); agents
are built from the same training data (seeded sample of the test users). Deciders: one per worker, so several
LLM servers (``--llm URL1 --llm URL2``: each worker talks to one, round robin) or llama.cpp instances run at once,
bounded by ``--workers``. A killed run resumes from its log (finished agents are skipped) and, with ``--llm-cache``,
from the response cache (the LLM answers of the agent cut short are not asked again). The summary file holds the
per-agent means, the time, agents per second and the LLM calls and tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recgen.config import make_config
from recgen.data.loaders import load_dataset
from recgen.data.simulate.agents import build_agents
from recgen.data.simulate.deciders import DECIDERS, GroundedDecider, LLMDecider, make_decider
from recgen.data.simulate.session import SimulationConfig, finished_agents, run_agents
from recgen.data.split import leave_one_out
from recgen.errors import ConfigError
from recgen.experiments.results import git_commit, machine_info, write_json
from recgen.experiments.studies.interactive import METRICS, model_pages
from recgen.models.registry import get_model_class


def make_deciders(name: str, train: Any, *, llm_specs: Sequence[str], workers: int, llm_cache: str | None = None):
    """``workers`` deciders of one kind; LLM ones each with their own backend (specs round robin), calibrated once
    and the calibration shared. Returns (deciders, LLM backends)."""
    grounded = GroundedDecider(train)
    if not name.startswith("llm"):
        return [make_decider(name, train, grounded=grounded) for _ in range(workers)], []
    from recgen.llm import load_llm, parse_spec, replica_threads

    specs = list(llm_specs) or [None]
    local = {"n_threads": replica_threads(workers)} if workers > 1 else {}  # llama.cpp copies share the cores
    backends = [
        load_llm(s, cache=llm_cache, **(local if parse_spec(s)[0] == "llamacpp" else {}))
        for s in (specs[i % len(specs)] for i in range(workers))
    ]
    first = LLMDecider(train, backends[0])
    first.calibrate(grounded)
    out = []
    for b in backends:
        d = first if b is backends[0] else LLMDecider(train, b)
        d.platt, d.calibration_z, d.calibration_pairs = first.platt, first.calibration_z, first.calibration_pairs
        out.append(make_decider(name, train, llm=d, grounded=grounded))
    return out, backends


def run_simulation(
    dataset: str,
    *,
    model: str = "ease",
    model_dir: str | None = None,
    n_agents: int = 100,
    decider: str = "grounded",
    llm: Sequence[str] = (),
    llm_cache: str | None = None,
    workers: int = 1,
    page_size: int = 4,
    reasons: bool = True,
    log_path: str | Path | None = None,
    resume: bool = False,
    sets: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    out_dir: str = "benchmarks/results/simulation",
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    if decider not in DECIDERS:
        raise ConfigError(f"unknown decider {decider!r}; use one of {', '.join(DECIDERS)}")
    if workers < 1 or n_agents < 1:
        raise ConfigError(f"--workers and --agents must be >= 1, got {workers} and {n_agents}")
    ds = load_dataset(dataset, **(data or {}))
    split = leave_one_out(ds)
    if model_dir:
        from recgen.models.base import Recommender

        rec = Recommender.load(model_dir)
        model = rec.name
    else:
        klass = get_model_class(model)
        rec = klass(make_config(klass.Config, sets or {})).fit(split.train, valid=split.valid)
    users = [str(u) for u in ds.users.external(split.test.user_ids)]
    users = sorted(np.random.default_rng(0).choice(users, min(n_agents, len(users)), replace=False).tolist(),
                   key=users.index)  # fmt: skip
    agents = build_agents(split.train, users)
    deciders, backends = make_deciders(decider, split.train, llm_specs=llm, workers=workers, llm_cache=llm_cache)
    path = Path(log_path or Path(out_dir) / f"{ds.name}__{model}__{decider}__a{len(users)}.jsonl")
    if path.exists() and not resume:
        raise ConfigError(f"{path} exists; pass --resume to continue it, or --log another file")
    cfg = SimulationConfig(page_size=page_size, reasons=reasons)
    log(f"{ds.name}: {len(users)} agents on {model} pages, decider {decider}, {workers} worker(s); log {path}")
    already = len(finished_agents(path))
    t0 = time.perf_counter()
    summaries = run_agents(agents, deciders, model_pages(rec, split.train, page_size), split.train, cfg, path,
                           resume=True, progress=True)  # fmt: skip
    seconds = time.perf_counter() - t0
    calls: dict[str, int] = {}
    for d in deciders:
        counter = getattr(d, "calls", None) or getattr(getattr(d, "llm", None), "calls", None) or {}
        for k, v in counter.items():
            calls[k] = calls.get(k, 0) + v
    means = {m: float(np.mean([s[m] for s in summaries if s.get(m) is not None] or [np.nan])) for m in METRICS}
    result = {
        "schema": "recgen-simulation/1",
        "task": "session",
        "dataset": ds.name,
        "model": model,
        "decider": decider,
        "agents": len(summaries),
        "workers": workers,
        "llm": [b.info() for b in backends],
        "log": str(path),
        "means": means,
        "seconds": seconds,
        "agents_resumed": already,  # finished in the log before this run (not simulated again)
        "agents_per_second": (len(summaries) - already) / seconds if seconds > 0 else None,
        "llm_calls": calls,
        "machine": machine_info(measure_peak=False),
        "git_commit": git_commit(),
        "command": command,
    }
    for b in backends:
        b.close()
    out = path.with_suffix(".json")
    result["_path"] = str(write_json(result, out))
    log(f"{len(summaries)} agents: watched {means['watched']:.2f}, satisfaction {means['satisfaction']:.2f}; "
        f"{seconds:.1f}s ({result['agents_per_second']:.2f} agents/s); LLM calls {calls or 'none'}")  # fmt: skip
    return result
