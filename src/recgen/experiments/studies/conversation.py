"""``recgen simulate dialogue``: conversational recommenders against simulated users who hold a hidden target
(InteRecAgent's protocol: a simulator with a hidden target item, at most 5 turns).

Each of ``n_users`` seeded test users of the leave-one-out split becomes a ``DialogueUser`` whose target is its
held-out next item. Policies, all over the same fitted model (EASE by default), ``k`` items per recommendation:

- ``retriever``: no conversation, one shot: the model's top ``k`` for the user's history;
- ``recommend``: every turn, the model's next ``k`` (rejected items excluded);
- ``ask-then-recommend``: asks the genre / category and the year first, then the model's best items that carry
  the values named in the answers;
- ``chat``: ``recgen.tasks.chat.ChatSession`` with its rule-based manager (asks the most informative attribute,
  filters, re-ranks; no LLM);
- ``llm-chat``: the same session with the LLM choosing the action and writing the lead sentence (``--llm``).

Users answer from the target's metadata by template (and, with ``--llm``, the ``chat`` policy also meets users
whose answers the LLM paraphrases, guarded by the leak check and the invented-attribute check). Per row: Hit@1 and
Hit@k within the turns (the target first in, or anywhere in, a recommended list), mean turns to the hit,
out-of-catalogue items shown (every shown id is looked up in the catalogue: must be 0), LLM generations withheld,
the leak rate and invented attributes per answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recgen.data.loaders import load_dataset
from recgen.data.simulate.agents import item_text
from recgen.data.simulate.dialogue import DialogueUser, RecommenderTurn, run_episode
from recgen.data.split import leave_one_out
from recgen.errors import ConfigError
from recgen.experiments.results import git_commit, provenance, write_json
from recgen.models.registry import create_model
from recgen.ops.topk import stable_topk

POLICIES = ("retriever", "recommend", "ask-then-recommend", "chat", "llm-chat")


class ModelPolicy:
    """The two baseline policies (see the module docstring) over a fitted recgen model."""

    def __init__(self, model: Any, train: Any, *, ask: bool, k: int = 4) -> None:
        self.model, self.train, self.ask, self.k = model, train, ask, k
        tags = item_text(train).tags
        self.values = sorted({t.split(":", 1)[1] for s in tags for t in s if not t.startswith("attributes:")},
                             key=len, reverse=True)  # fmt: skip
        self.item_tags = tags
        table = train.item_table
        self.years = np.zeros(train.items.size)
        if table is not None and "year" in table.column_names:
            dense = train.items.lookup([str(x) for x in table.column(0).to_pylist()], default=0)
            for d, y in zip(dense, table.column("year").to_pylist(), strict=True):
                if d > 0 and y not in (None, "") and str(y).isdigit():
                    self.years[d] = float(y)

    def _wanted(self, transcript) -> tuple[set[str], int | None]:
        """Catalogue values (and a year) named in the user's answers so far."""
        said = " ".join(r.text for _, r in transcript).lower()
        values = {v for v in self.values if re.search(rf"\b{re.escape(v.lower())}\b", said)}
        year = re.search(r"\b(1[89]\d\d|20\d\d)\b", said)
        return values, int(year.group(1)) if year else None

    def __call__(self, user: DialogueUser, transcript) -> RecommenderTurn:
        asked = {t.attribute for t, _ in transcript if t.kind == "ask"}
        if self.ask:
            for attribute in ("genre", "category", "year"):
                if (
                    attribute not in asked
                    and attribute in _askable(self.train)
                    and len(transcript) < user.max_turns - 1
                ):
                    return RecommenderTurn("ask", attribute=attribute, text=f"Which {attribute} are you after?")
        u = int(self.model.users_.index(user.user, default=0))
        hist = self.model.train_history(u)
        with torch.no_grad():
            scores = self.model.score_masked(np.asarray([u]), [hist])[0]
        rejected = self.model.items_.lookup(user.rejected, default=0) if user.rejected else np.zeros(0, np.int64)
        scores[torch.from_numpy(rejected[rejected > 0])] = -torch.inf
        if self.ask:
            values, year = self._wanted(transcript)
            if values or year:
                ext = self.model.items_.external(np.arange(1, self.model.items_.size))
                mine = self.train.items.lookup(ext, default=0)
                match = np.zeros(self.model.items_.size, dtype=bool)
                for m_i, t_i in enumerate(mine, 1):
                    named = {t.split(":", 1)[1] for t in self.item_tags[t_i]}
                    ok = (not values or bool(named & values)) and (year is None or abs(self.years[t_i] - year) <= 2)
                    match[m_i] = ok
                boost = torch.from_numpy(match) & torch.isfinite(scores)
                if int(boost.sum()) >= self.k:
                    scores = torch.where(boost, scores, torch.full_like(scores, -torch.inf))
        _, idx = stable_topk(scores[None], self.k)
        return RecommenderTurn("recommend", items=[str(x) for x in self.model.items_.external(idx[0].numpy())])


class ChatPolicy:
    """A ``ChatSession`` as a dialogue policy: each user reply is its next message."""

    def __init__(self, model: Any, *, llm: Any = None, k: int = 5) -> None:
        from recgen.tasks.catalog import Catalog

        self.model, self.llm, self.k = model, llm, k
        self.catalog = Catalog.from_model(model)
        self.sessions: dict[int, Any] = {}

    def __call__(self, user: DialogueUser, transcript) -> RecommenderTurn:
        from recgen.tasks.chat import ChatSession

        key = id(user)
        if key not in self.sessions:
            self.sessions = {key: ChatSession(self.model, user=user.user, llm=self.llm, k=self.k, catalog=self.catalog)}
        session = self.sessions[key]
        text = transcript[-1][1].text if transcript else "Hi! Can you recommend me something?"
        reply = session.respond(text)
        self.withheld = session.withheld
        if reply.action == "ask":
            return RecommenderTurn("ask", attribute=reply.attribute, text=reply.text)
        if reply.action == "recommend":
            return RecommenderTurn("recommend", text=reply.text, items=[i["item_id"] for i in reply.items])
        return RecommenderTurn("say", text=reply.text)


def _askable(train: Any) -> set[str]:
    table = train.item_table
    cols = set(table.column_names) if table is not None else set()
    return {a for a, c in (("genre", "genres"), ("category", "categories"), ("year", "year")) if c in cols}


def _hit_rank(episode: dict[str, Any]) -> int:
    """1-based position of the target in the recommended list that held it (0: never recommended)."""
    for t in episode["transcript"]:
        items = t["recommender"]["items"]
        if episode["target"] in items:
            return items.index(episode["target"]) + 1
    return 0


def _examples(episodes: list[dict[str, Any]], ranks: list[int]) -> list[dict[str, Any]]:
    """A success, a failure and one with a question (where there are), verbatim, for the note."""
    picks = {}
    for e, r in zip(episodes, ranks, strict=True):
        if r and "success" not in picks:
            picks["success"] = e
        if not r and "failure" not in picks:
            picks["failure"] = e
        if any(t["recommender"]["kind"] == "ask" for t in e["transcript"]) and "asked" not in picks:
            picks["asked"] = e
    return [{"kind": kind, **e} for kind, e in picks.items()]


def run_dialogue_study(
    dataset: str,
    *,
    n_users: int = 100,
    max_turns: int = 5,
    model: str = "ease",
    k: int = 5,
    llm: str | None = None,
    policies: Sequence[str] = POLICIES,
    sets: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    out_dir: str = "benchmarks/results/simulation",
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    bad = [p for p in policies if p not in POLICIES]
    if bad or not policies:
        raise ConfigError(f"unknown policy {bad}; use some of {', '.join(POLICIES)}")
    if n_users < 1 or max_turns < 1:
        raise ConfigError(f"--users and --turns must be >= 1, got {n_users} and {max_turns}")
    commit = git_commit()
    ds = load_dataset(dataset, **(data or {}))
    split = leave_one_out(ds)
    rec = create_model(model, **(sets or {})).fit(split.train, valid=split.valid)
    rows_idx = np.sort(np.random.default_rng(0).choice(len(split.test), min(n_users, len(split.test)), replace=False))
    users = [str(u) for u in ds.users.external(split.test.user_ids[rows_idx])]
    targets = [str(ds.items.external(np.asarray([split.test.targets(r)[0]]))[0]) for r in rows_idx]
    backend = None
    if llm is not None:
        from recgen.llm import load_llm

        backend = load_llm(llm)
    rows = []
    known = set(rec.items_.external(np.arange(1, rec.items_.size)).tolist())
    plan = [(name, "template") for name in policies if name != "llm-chat" or backend is not None]
    plan += [("chat", "llm")] if backend is not None and "chat" in policies else []
    for name, kind in plan:
        if name in ("chat", "llm-chat"):
            policy = ChatPolicy(rec, llm=backend if name == "llm-chat" else None, k=k)
        else:
            policy = ModelPolicy(rec, split.train, ask=name == "ask-then-recommend", k=k)
        t0 = time.perf_counter()
        episodes, withheld = [], 0
        for u, target in zip(users, targets, strict=True):
            turns = 1 if name == "retriever" else max_turns
            user = DialogueUser(split.train, u, target, llm=backend if kind == "llm" else None, max_turns=turns)
            episodes.append(run_episode(user, policy))
            withheld += getattr(policy, "withheld", 0)
        ranks = [_hit_rank(e) for e in episodes]
        shown = [i for e in episodes for t in e["transcript"] for i in t["recommender"]["items"]]
        won = [e for e, r in zip(episodes, ranks, strict=True) if r]
        answers = sum(sum(1 for t in e["transcript"] if t["recommender"]["kind"] == "ask") for e in episodes)
        row = {
            "policy": name,
            "user": kind,
            "episodes": len(episodes),
            "hit@1": float(np.mean([r == 1 for r in ranks])),
            f"hit@{k}": float(np.mean([bool(r) for r in ranks])),
            "success_rate": float(np.mean([bool(r) for r in ranks])),
            "mean_turns_to_success": float(np.mean([e["turns"] for e in won])) if won else None,
            "items_shown": len(shown),
            "out_of_catalogue_shown": sum(1 for i in shown if i not in known),
            "llm_generations_withheld": withheld,
            "leak_rate": float(np.mean([e["leaked"] for e in episodes])),
            "invented_per_answer": sum(e["invented"] for e in episodes) / answers if answers else 0.0,
            "seconds": time.perf_counter() - t0,
            "examples": _examples(episodes, ranks),
        }
        rows.append(row)
        log(f"{name} / {kind} user: hit@1 {row['hit@1']:.3f}, hit@{k} {row[f'hit@{k}']:.3f} in "
            f"{1 if name == 'retriever' else max_turns} turn(s), out of catalogue {row['out_of_catalogue_shown']}, "
            f"withheld {withheld}, leaks {row['leak_rate']:.3f}")  # fmt: skip
    result = {
        "schema": "recgen-simulation/1",
        "task": "dialogue",
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "protocol": {
            **split.protocol,
            "description": split.describe(),
            "users": len(users),
            "seed": 0,
            "max_turns": max_turns,
            "k": k,
            "model": model,
        },  # fmt: skip
        "llm": backend.info() if backend is not None else None,
        "rows": rows,
        **provenance(commit, command),
    }
    if backend is not None:
        backend.close()
    path = Path(out_dir) / f"{ds.name}__dialogue__u{len(users)}{'__llm' if backend is not None else ''}.json"
    result["_path"] = str(write_json(result, path))
    return result
