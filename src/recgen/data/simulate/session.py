"""Agents in front of a recommender, page after page (Agent4Rec's interactive evaluation).

Each agent sees pages of ``page_size`` items from a page source (any recommender, wrapped by the caller: it is
given the agent, the agent's history so far and the items already shown, and returns the next page). For each
item the agent watches or skips (watch probability of its decider at or above ``watch_threshold``), rates what it
watched and says why; after each page it continues or exits: it leaves after its page budget (by its activity
trait: 2, 4 or 6 pages) or after ``exit_after_empty_pages`` pages in a row without anything watched. Watched
items join the agent's history, so the next page is recommended from it. At the end it gives a satisfaction
score from 1 to 10: 1 + 9 x (half the share of shown items it watched + half its mean rating scaled to [0, 1]).

Every action and its reason is a line of a JSONL log; the lines of an agent are appended together, with an fsync,
once the agent has finished, so a run killed midway holds whole agents only and ``resume`` skips them. Runs are
seeded and deterministic: the same inputs give the same log, line for line.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recgen.data.dataset import Dataset
from recgen.data.simulate.agents import AgentProfile
from recgen.data.simulate.deciders import Decider
from recgen.errors import ConfigError, DataError

PageSource = Callable[[AgentProfile, list[int], set[int]], list[int]]


@dataclass(frozen=True, kw_only=True)
class SimulationConfig:
    page_size: int = 4  # items per page (Agent4Rec: 4)
    watch_threshold: float = 0.5  # watch when the decider's probability is at least this
    exit_after_empty_pages: int = 2  # leave after this many pages in a row with nothing watched
    reasons: bool = True  # log a reason for every watch / skip (the LLM deciders generate them: slower)
    seed: int = 0

    def validate(self) -> None:
        if self.page_size < 1 or self.exit_after_empty_pages < 1:
            raise ConfigError("page_size and exit_after_empty_pages must be >= 1")
        if not 0.0 <= self.watch_threshold <= 1.0:
            raise ConfigError(f"watch_threshold must be in [0, 1], got {self.watch_threshold}")


def simulate_agent(
    agent: AgentProfile, decider: Decider, next_page: PageSource, cfg: SimulationConfig, train: Dataset
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One agent's session: its log lines and its summary."""
    history = list(map(int, agent.history))
    shown: set[int] = set()
    lines: list[dict[str, Any]] = []
    watched_per_page: list[int] = []
    ratings: list[float] = []
    empty = 0
    ext = lambda i: str(train.items.external(np.asarray([i]))[0])  # noqa: E731
    for page in range(1, agent.pages_budget + 1):
        items = [int(i) for i in next_page(agent, history, shown)][: cfg.page_size]
        if not items:
            lines.append({"agent": agent.user, "page": page, "action": "exit", "reason": "nothing left to show"})
            break
        shown.update(items)
        p = decider.watch_probs(agent, items)
        watch = [bool(x >= cfg.watch_threshold) for x in p]
        watched = [i for i, w in zip(items, watch, strict=True) if w]
        r = dict(zip(watched, decider.ratings(agent, watched), strict=True)) if watched else {}
        for i, w, prob in zip(items, watch, p, strict=True):
            line = {"agent": agent.user, "page": page, "item": ext(i), "action": "watch" if w else "skip",
                    "p_watch": round(float(prob), 6)}  # fmt: skip
            if w:
                line["rating"] = int(np.clip(np.rint(r[i]), 1, 5))
                ratings.append(line["rating"])
            if cfg.reasons:
                line["reason"] = decider.reason(agent, i, w)
            lines.append(line)
        history += watched
        watched_per_page.append(len(watched))
        agent.memory.append({"page": page, "shown": [ext(i) for i in items], "watched": [ext(i) for i in watched]})
        empty = 0 if watched else empty + 1
        last = page == agent.pages_budget
        leave = last or empty >= cfg.exit_after_empty_pages
        why = ("page budget reached" if last else f"{empty} pages without anything to watch") if leave else "curious"
        lines.append({"agent": agent.user, "page": page, "action": "exit" if leave else "continue", "reason": why})
        if leave:
            break
    n_shown = sum(1 for x in lines if x["action"] in ("watch", "skip"))
    share = sum(watched_per_page) / max(n_shown, 1)
    mean_rating = float(np.mean(ratings)) if ratings else None
    satisfaction = 1 + round(9 * (0.5 * share + 0.5 * ((mean_rating - 1) / 4 if ratings else 0.0)))
    lines.append({"agent": agent.user, "action": "satisfaction", "value": int(satisfaction)})
    summary = {
        "agent": agent.user,
        "pages": len(watched_per_page),
        "watched": int(sum(watched_per_page)),
        "watched_per_page": float(np.mean(watched_per_page)) if watched_per_page else 0.0,
        "mean_rating": mean_rating,
        "satisfaction": int(satisfaction),
    }
    return lines, summary


def finished_agents(log: Path) -> set[str]:
    """Agents whose session is complete in a log (its satisfaction line is there). A run killed while writing
    leaves at most the start of one agent's lines at the end (an agent's lines are written at once): those are
    cut off (the file rewritten atomically), so the agent runs again and its lines never appear twice. Damage
    anywhere else is an error."""
    if not log.is_file():
        return set()
    raw = log.read_bytes()
    lines = raw.split(b"\n")
    complete = lines[:-1]  # the text after the last newline is an unfinished line (empty in a whole file)
    rows = []
    for n, line in enumerate(complete, 1):
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise DataError(f"line {n} of {log} is not JSON; the log is damaged: move it away to start over") from None
    done = {str(r["agent"]) for r in rows if r.get("action") == "satisfaction"}
    keep = len(rows)
    while keep and str(rows[keep - 1]["agent"]) not in done:  # the tail of an agent cut short
        keep -= 1
    if keep < len(rows) or lines[-1]:
        from recgen.io import atomic_write_file

        kept = b"".join(line + b"\n" for line in complete[:keep])
        atomic_write_file(log, lambda tmp: Path(tmp).write_bytes(kept))
    return done


def run_agents(
    agents: Sequence[AgentProfile],
    decider: Decider | Sequence[Decider],
    next_page: PageSource,
    train: Dataset,
    cfg: SimulationConfig,
    log: str | Path,
    *,
    resume: bool = True,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Simulate every agent not yet finished in ``log`` (appended, one whole agent at a time); returns the
    summaries of all agents in the log, recomputed from it, in agent order.

    ``decider`` may be a list: one per worker (e.g. each over its own LLM server or its own llama.cpp instance,
    which is not thread-safe); that many agents run at once, each borrowing a free decider. ``next_page`` must be
    safe to call from those threads (recgen models' scoring is)."""
    cfg.validate()
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    if not resume and log.exists():
        raise ConfigError(f"{log} exists; resume it (resume=True) or remove it to start over")
    done = finished_agents(log)
    todo = [a for a in agents if a.user not in done]
    pool: queue.Queue[Decider] = queue.Queue()
    for d in [decider] if isinstance(decider, Decider) else decider:
        pool.put(d)
    if pool.empty():
        raise ConfigError("give at least one decider")
    lock = threading.Lock()

    def one(agent: AgentProfile) -> None:
        d = pool.get()
        try:
            lines, _ = simulate_agent(agent, d, next_page, cfg, train)
        finally:
            pool.put(d)
        text = "".join(json.dumps(x, sort_keys=True) + "\n" for x in lines)
        with lock, open(log, "a", encoding="utf-8") as f:  # an agent's lines land together, then reach the disk
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    from recgen.progress import track

    workers = pool.qsize()
    if workers == 1:
        for agent in track(todo, description="agents", total=len(todo)) if progress else todo:
            one(agent)
    else:
        with ThreadPoolExecutor(workers) as ex:
            futures = [ex.submit(one, a) for a in todo]
            done_iter = as_completed(futures)
            for f in track(done_iter, description="agents", total=len(futures)) if progress else done_iter:
                f.result()
    return summaries(log, [a.user for a in agents])


def summaries(log: Path, order: Sequence[str]) -> list[dict[str, Any]]:
    """Per-agent summaries recomputed from a log (so a resumed run reports every agent alike)."""
    by: dict[str, dict[str, Any]] = {}
    with open(log, encoding="utf-8") as f:
        for line in f:
            x = json.loads(line)
            s = by.setdefault(str(x["agent"]), {"agent": str(x["agent"]), "pages": 0, "watched": 0, "ratings": []})
            if x["action"] in ("continue", "exit") and "page" in x:
                s["pages"] = max(s["pages"], int(x["page"]))
            elif x["action"] == "watch":
                s["watched"] += 1
                s["ratings"].append(x["rating"])
            elif x["action"] == "satisfaction":
                s["satisfaction"] = x["value"]
    out = []
    for user in order:
        s = by.get(str(user))
        if s is None or "satisfaction" not in s:
            continue
        r = s.pop("ratings")
        s["mean_rating"] = float(np.mean(r)) if r else None
        s["watched_per_page"] = s["watched"] / max(s["pages"], 1)
        out.append(s)
    return out
