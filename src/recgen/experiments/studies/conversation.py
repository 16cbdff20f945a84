"""``recgen simulate dialogue``: conversational policies against simulated users who hold a hidden target.

Each of ``n_users`` seeded test users of the leave-one-out split becomes a ``DialogueUser`` whose target is its
held-out next item; a policy talks to it for at most ``max_turns`` turns. Two non-LLM policies over a fitted model
(EASE by default), the baselines the conversational task (``recgen.tasks``) is measured against:

- ``recommend``: every turn, the model's next ``k`` items for the user's history (rejected items excluded);
- ``ask-then-recommend``: first asks the genre / category (and the year where the catalogue has one), reads the
  catalogue values named in the answers (only values that exist), then recommends the model's best items that
  carry them, falling back to the model's ranking.

Users answer from the target's metadata by template, or with an LLM paraphrase (``--llm``) that the leak check and
the invented-attribute check guard. Per policy and user kind: success rate (target accepted within the turns),
mean turns to success, leak rate (episodes failed by the check) and invented attributes per answer.
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

POLICIES = ("recommend", "ask-then-recommend")


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


def _askable(train: Any) -> set[str]:
    table = train.item_table
    cols = set(table.column_names) if table is not None else set()
    return {a for a, c in (("genre", "genres"), ("category", "categories"), ("year", "year")) if c in cols}


def run_dialogue_study(
    dataset: str,
    *,
    n_users: int = 200,
    max_turns: int = 5,
    model: str = "ease",
    k: int = 4,
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
    kinds = ["template"]
    if llm is not None:
        from recgen.llm import load_llm

        backend = load_llm(llm)
        kinds.append("llm")
    rows = []
    for kind in kinds:
        for name in policies:
            policy = ModelPolicy(rec, split.train, ask=name == "ask-then-recommend", k=k)
            t0 = time.perf_counter()
            episodes = []
            for u, target in zip(users, targets, strict=True):
                user = DialogueUser(split.train, u, target, llm=backend if kind == "llm" else None, max_turns=max_turns)
                episodes.append(run_episode(user, policy))
            won = [e for e in episodes if e["success"]]
            answers = sum(sum(1 for t in e["transcript"] if t["recommender"]["kind"] == "ask") for e in episodes)
            row = {
                "policy": name,
                "user": kind,
                "episodes": len(episodes),
                "success_rate": len(won) / len(episodes),
                "mean_turns_to_success": float(np.mean([e["turns"] for e in won])) if won else None,
                "leak_rate": float(np.mean([e["leaked"] for e in episodes])),
                "invented_per_answer": sum(e["invented"] for e in episodes) / answers if answers else 0.0,
                "seconds": time.perf_counter() - t0,
                "example": episodes[0]["transcript"],
            }
            rows.append(row)
            log(f"{name} / {kind} user: success {row['success_rate']:.3f} in {max_turns} turns, leaks "
                f"{row['leak_rate']:.3f}, invented/answer {row['invented_per_answer']:.3f}")  # fmt: skip
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
    path = Path(out_dir) / f"{ds.name}__dialogue__u{len(users)}.json"
    result["_path"] = str(write_json(result, path))
    return result
