"""LLM batch jobs that survive: many prompts, one output line each, resumable after a kill.

``run_batch(llm, jobs, out)`` sends every job (``{"id": ..., "prompt": ...}`` or ``"messages"``) whose id is not
yet in ``out`` to the LLM, ``workers`` at a time (an ``openai`` backend over several servers takes many; an
in-process model takes one at a time, so ``llm`` may be a list of replicas, ``recgen.llm.load_replicas``, one job on
each), and appends one JSON line per job with an fsync once it is done. With ``batch`` > 1 each replica takes the
first tries of ``batch`` jobs at once (``LLM.chat_many``: the embedded llama.cpp model decodes them in one batch,
the same outputs as one at a time, more tokens per second; ``benchmarks/batched_decoding.py``); retries run alone.
A served backend batches on its server: leave ``batch`` at 1 there and raise ``workers``.

- ``status: "ok"`` with the text (and ``json`` when a schema was given), or ``status: "missing"`` with the error
  after ``retries`` more tries, never silently dropped. A retry differs from the try before it: one cut at
  ``max_tokens`` (under a schema, the usual failure: the grammar only lets valid JSON through, so a cut is what
  breaks it) gets twice the tokens; any other failure is sampled again (temperature at least
  ``RETRY_TEMPERATURE``, the attempt number as the seed). A greedy retry with the same budget would repeat the
  same output;
- token counts and seconds per job; the summary adds tokens/s and the rate.

A run killed midway leaves whole lines plus at most one cut line at the end, which the next run removes (the file
rewritten atomically) before it continues: nothing is generated twice, nothing is lost. With the response cache,
even the jobs in flight at the kill are not generated again.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from recgen.errors import ConfigError, DataError


def recover_jsonl(path: Path, key: str = "id") -> list[dict[str, Any]]:
    """The complete lines of a JSONL file; a cut last line (a kill mid-write) is removed from the file. A damaged
    line elsewhere is an error."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    rows = []
    for n, line in enumerate(lines[:-1], 1):
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise DataError(
                f"line {n} of {path} is not JSON; the file is damaged: move it away to start over"
            ) from None
        if key not in rows[-1]:
            raise DataError(f"line {n} of {path} has no {key!r}; is it this job's output?")
    if lines[-1]:
        from recgen.io import atomic_write_file

        kept = b"".join(line + b"\n" for line in lines[:-1])
        atomic_write_file(path, lambda tmp: Path(tmp).write_bytes(kept))
    return rows


def read_jobs(path: str | Path) -> list[dict[str, Any]]:
    """Jobs from a JSONL file: one object per line with a unique ``id`` and a ``prompt`` or ``messages``."""
    path = Path(path)
    jobs, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                job = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {n} is not JSON ({exc.msg}); write one JSON object per line") from None
            if not isinstance(job, dict) or "id" not in job or not ("prompt" in job or "messages" in job):
                raise DataError(f'{path}: line {n} needs an "id" and a "prompt" (or "messages")')
            if str(job["id"]) in seen:
                raise DataError(f"{path}: id {job['id']!r} appears twice (line {n}); ids must be unique")
            seen.add(str(job["id"]))
            jobs.append(job)
    return jobs


RETRY_TEMPERATURE = 0.7


def run_batch(
    llm: Any,
    jobs: Sequence[dict[str, Any]] | Iterable[dict[str, Any]],
    out: str | Path,
    *,
    max_tokens: int = 128,
    temperature: float = 0.0,
    json_schema: dict[str, Any] | None = None,
    retries: int = 2,
    workers: int = 1,
    batch: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Run every job not yet in ``out``; returns the summary (see the module docstring). ``llm``: one LLM, or a
    list of replicas of one (each runs one job at a time, or ``batch`` jobs' first tries at once)."""
    if workers < 1 or retries < 0 or batch < 1:
        raise ConfigError(f"workers and batch must be >= 1 and retries >= 0, got {workers}, {batch} and {retries}")
    replicas = list(llm) if isinstance(llm, (list, tuple)) else [llm]
    if len(replicas) > 1:
        workers = len(replicas)  # one job in flight on each replica
    elif getattr(replicas[0], "backend", "") != "openai":
        workers = 1  # an in-process model is not thread-safe: one job at a time
    free: queue.SimpleQueue = queue.SimpleQueue()
    for r in replicas if len(replicas) > 1 else replicas * workers:  # a served backend is shared by every worker
        free.put(r)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {str(r["id"]) for r in recover_jsonl(out)}
    jobs = list(jobs)
    todo = [j for j in jobs if str(j["id"]) not in done]
    lock = threading.Lock()
    stats = {"ok": 0, "missing": 0, "prompt_tokens": 0, "completion_tokens": 0}

    def one(group: list[dict[str, Any]]) -> None:
        model = free.get()
        try:
            firsts: list[Any] = [None] * len(group)
            if len(group) > 1:  # the first tries of the group at once; a failure leaves each to try alone
                try:
                    firsts = model.chat_many([conversation(j) for j in group], max_tokens=max_tokens,
                                             temperature=temperature, seed=0, json_schema=json_schema)  # fmt: skip
                except (DataError, ConfigError):
                    pass
            for job, first in zip(group, firsts, strict=True):
                run_one(model, job, first)
        finally:
            free.put(model)

    def conversation(job: dict[str, Any]) -> Any:
        return job["messages"] if "messages" in job else job["prompt"]

    def run_one(llm: Any, job: dict[str, Any], first: Any = None) -> None:
        t0 = time.perf_counter() - (first.seconds if first is not None else 0.0)
        row: dict[str, Any] = {"id": job["id"]}
        error = ""
        budget, temp = max_tokens, temperature
        for attempt in range(retries + 1):
            try:
                g = first if attempt == 0 and first is not None else llm.chat(
                    conversation(job), max_tokens=budget, temperature=temp, seed=attempt, json_schema=json_schema
                )  # fmt: skip
            except (DataError, ConfigError) as exc:
                error = str(exc)
                temp = max(temperature, RETRY_TEMPERATURE)
                continue
            if g.finish_reason == "length":
                budget *= 2  # the next try has room to finish
            else:
                temp = max(temperature, RETRY_TEMPERATURE)
            text = g.text.strip()
            row["prompt_tokens"] = row.get("prompt_tokens", 0) + g.prompt_tokens
            row["completion_tokens"] = row.get("completion_tokens", 0) + g.completion_tokens
            if not text:
                error = "empty generation"
                continue
            if json_schema is not None:
                try:
                    row["json"] = json.loads(text)
                except json.JSONDecodeError as exc:
                    error = f"not valid JSON ({exc.msg})"
                    continue
            row.update(status="ok", text=text, attempts=attempt + 1)
            break
        else:
            row.update(status="missing", error=error, attempts=retries + 1)
        row["seconds"] = round(time.perf_counter() - t0, 4)
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with lock:
            with open(out, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            stats[row["status"]] += 1
            stats["prompt_tokens"] += row.get("prompt_tokens", 0)
            stats["completion_tokens"] += row.get("completion_tokens", 0)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(one, todo[at : at + batch]) for at in range(0, len(todo), batch)]
        it = as_completed(futures)
        if progress:
            from recgen.progress import track

            it = track(it, description="generating" if batch == 1 else f"generating ({batch} a batch)",
                       total=len(futures))  # fmt: skip
        for f in it:
            f.result()
    seconds = time.perf_counter() - t0
    return {
        "jobs": len(jobs),
        "resumed": len(jobs) - len(todo),  # already in the output: not generated again
        "generated": stats["ok"],
        "missing": stats["missing"],
        "prompt_tokens": stats["prompt_tokens"],
        "completion_tokens": stats["completion_tokens"],
        "seconds": seconds,
        "completion_tokens_per_second": stats["completion_tokens"] / seconds if seconds > 0 else None,
        "jobs_per_second": len(todo) / seconds if seconds > 0 else None,
        "workers": workers,
        "batch": batch,
    }
