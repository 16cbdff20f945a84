"""A conversational recommender: the InteRecAgent pattern (Huang et al., 2023), grounded in the catalogue.

A ``ChatSession`` holds one conversation. Each user message goes through the same steps:

1. **Understand** (no LLM: read against the catalogue, so only values that exist count): attribute values named
   (wanted or, after "no" / "not", avoided), a decade or year, a price cap, and items named by title (fuzzy
   lookup, rapidfuzz).
2. **Decide** the next action: ``ask`` (a clarifying question about the most informative attribute of the current
   candidates), ``recommend``, or ``answer`` (facts about an item the user asked about). The rule-based manager
   asks at most ``max_questions`` questions while the candidates are spread over an attribute, then recommends.
   With an LLM, the manager asks the LLM for the action as JSON under a schema whose enums hold only the actions
   and the attributes this catalogue has; the session's tools carry it out.
3. **Act** with tools: candidate retrieval with the fitted model from the user's history plus the items
   mentioned, hard filters on metadata (relaxed only when fewer than ``k`` items pass, and then said so; among
   the items that pass, those that meet more of the stated wishes come first, then the model's order), a
   candidate memory (shown and rejected items never come back), item lookup.
4. **Say it**: the items are listed by the system from the catalogue (ids resolved before anything is shown);
   the LLM may write one lead sentence, which is shown only if it names no title outside the chosen items and
   quotes nothing (else the template lead is used and the withheld generation is counted).

Where recgen differs from InteRecAgent: its GPT-4 plans multi-step tool chains and writes the whole reply; here
the (small, by default) LLM only picks the next action and a lead sentence, and everything factual is the
catalogue's and the model's. ``ChatReply.withheld`` counts the generations not shown.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recgen.errors import DataError
from recgen.ops.topk import stable_topk
from recgen.tasks.catalog import Catalog, Constraints

ACTIONS = ("ask", "recommend", "answer")
QUESTIONS = {
    "genre": "What kind of film are you in the mood for? For example {examples}.",
    "category": "Which kind of product are you after? For example {examples}.",
    "brand": "Any brand you prefer? For example {examples}.",
    "kind": "What kind of product are you looking for? For example {examples}.",
    "year": "Old or recent? Any decade you prefer ({examples})?",
}


@dataclass
class ChatReply:
    text: str
    action: str
    items: list[dict[str, Any]] = field(default_factory=list)  # the catalogue's facts of each shown item
    attribute: str | None = None  # what was asked about
    relaxed: bool = False  # fewer than k items met the filters: the rest are the model's best without them
    withheld: int = 0  # LLM generations not shown (named something outside the chosen items, or malformed)


class ChatSession:
    def __init__(
        self,
        model: Any,
        *,
        user: str | None = None,
        history: list[str] | None = None,
        llm: Any = None,
        k: int = 5,
        max_questions: int = 2,
        catalog: Catalog | None = None,
    ) -> None:
        self.model, self.llm, self.k, self.max_questions = model, llm, k, max_questions
        self.catalog = catalog or Catalog.from_model(model)
        self.user = int(model.users_.index(user, default=0)) if user is not None else 0
        if history:
            dense = model.items_.lookup(history, default=0)
            self.history = [int(d) for d in dense if d > 0]
        else:
            self.history = [int(d) for d in model.train_history(self.user)]
        self.constraints = Constraints()
        self.mentioned: list[int] = []
        self.shown: set[int] = set()
        self.asked: list[str] = []
        self.turns: list[dict[str, Any]] = []
        self.withheld = 0

    # ---------------------------------------------------------------------------------- tools
    def retrieve(self, n: int | None = None) -> tuple[list[int], bool]:
        """The model's best items for the history plus the mentioned items, shown ones excluded, filtered by the
        constraints (relaxed when fewer than ``n`` pass); returns (dense items, relaxed)."""
        n = n or self.k
        hist = np.asarray(self.history + [m for m in self.mentioned if m not in self.history], dtype=np.int64)
        with torch.no_grad():
            scores = self.model.score_masked(np.asarray([self.user]), [hist])[0].clone()
        gone = torch.as_tensor(sorted(self.shown), dtype=torch.long)
        if len(gone):
            scores[gone] = -torch.inf
        relaxed = False
        if not self.constraints.empty():
            ok = torch.from_numpy(self.catalog.mask(self.constraints)) & torch.isfinite(scores)
            if int(ok.sum()) >= n:
                scores = torch.where(ok, scores, torch.full_like(scores, -torch.inf))
            else:
                relaxed = True
        if self.constraints.want and not relaxed:  # the items that meet more of the wishes first, then the model
            s = scores.numpy()
            live = np.flatnonzero(np.isfinite(s))
            met = np.zeros(len(live))
            for attr, wanted in self.constraints.want.items():
                per = self.catalog.words.get(attr)
                if per is not None:
                    met += np.fromiter((len(per[d] & wanted) for d in live), float, len(live))
            order = np.lexsort((live, -s[live], -met))[:n]  # ties: higher score, then lower id
            return [int(d) for d in live[order]], relaxed
        vals, idx = stable_topk(scores[None], n)
        return [int(i) for v, i in zip(vals[0].tolist(), idx[0].tolist(), strict=True) if math.isfinite(v)], relaxed

    def informative_attribute(self) -> str | None:
        """The attribute not yet asked or constrained whose values spread the top 100 candidates the most
        (entropy of the value counts), as InteRecAgent's clarifying questions aim at."""
        pool, _ = self.retrieve(100)
        best, best_h = None, 0.0
        candidates = [a for a in ("genre", "category", "brand", "kind") if a in self.catalog.words]
        candidates += ["year"] if self.catalog.has_year else []
        for attr in candidates:
            if attr in self.asked or attr in self.constraints.want or (attr == "year" and self.constraints.year):
                continue
            if attr == "year":
                counts = np.bincount((self.catalog.year[pool] // 10).astype(int) % 100, minlength=100)
            else:
                values: dict[str, int] = {}
                for d in pool:
                    for v in self.catalog.words[attr][d]:
                        values[v] = values.get(v, 0) + 1
                counts = np.asarray(list(values.values()))
            p = counts[counts > 0] / max(counts.sum(), 1)
            h = float(-(p * np.log(p)).sum())
            if h > best_h:
                best, best_h = attr, h
        return best

    # ---------------------------------------------------------------------------- conversation
    def understand(self, text: str) -> tuple[Constraints, list[int]]:
        c = self.catalog.constraints_in(text)
        named = self.catalog.mentioned(text)
        for phrase in re.findall(r"\blike ([A-Z][^,.!?]{2,60})", text):  # "something like Heat"
            named += [d for d, score in self.catalog.lookup(phrase, limit=1, cutoff=90)]
        return c, list(dict.fromkeys(named))

    def _llm_action(self, text: str) -> tuple[str, str | None]:
        askable = [a for a in ("genre", "category", "brand", "year") if a in self.catalog.words or
                   (a == "year" and self.catalog.has_year)]  # fmt: skip
        schema = {
            "type": "object",
            "properties": {"action": {"type": "string", "enum": list(ACTIONS)},
                           "attribute": {"type": "string", "enum": askable or ["none"]}},
            "required": ["action", "attribute"],
        }  # fmt: skip
        prompt = (
            "You are a recommendation assistant. Decide the next step: ask (a clarifying question about an "
            "attribute), recommend, or answer (about an item the user named).\n"
            f"Known so far: {self.constraints.describe()}. Questions asked: {', '.join(self.asked) or 'none'}.\n"
            f"The user says: {text}"
        )
        try:
            out = self.llm.chat(prompt, max_tokens=40, temperature=0.0, json_schema=schema).json()
            action, attribute = str(out["action"]), str(out["attribute"])
        except Exception:  # noqa: BLE001 - a malformed generation: the rule decides, and it is counted
            self.withheld += 1
            return "", None
        return (action if action in ACTIONS else ""), (attribute if attribute in askable else None)

    def _lead(self, items: list[int], default: str) -> str:
        """One lead sentence: the LLM's if it names nothing outside ``items`` and quotes nothing, else ``default``."""
        if self.llm is None:
            return default
        schema = {"type": "object", "properties": {"lead": {"type": "string", "maxLength": 160}}, "required": ["lead"]}
        facts = "; ".join(self.catalog.line(d) for d in items[:3])
        prompt = (f"In one short friendly sentence, introduce these recommendations without naming any other "
                  f"title. Wishes: {self.constraints.describe()}. Items: {facts}")  # fmt: skip
        try:
            lead = str(self.llm.chat(prompt, max_tokens=80, temperature=0.0, json_schema=schema).json()["lead"]).strip()
        except Exception:  # noqa: BLE001
            self.withheld += 1
            return default
        if not lead or not self.grounded_text(lead, items):
            self.withheld += 1
            return default
        return lead

    def grounded_text(self, text: str, allowed: list[int]) -> bool:
        """Whether ``text`` names no catalogue item outside ``allowed``, no year none of them is from, and quotes no
        name (a quoted or Title-Case-with-year phrase that is not an allowed item's title counts as naming one)."""
        if set(self.catalog.mentioned(text)) - set(allowed):
            return False
        years = {int(y) for y in re.findall(r"\b(1[89]\d\d|20\d\d)\b", text)}
        if years - {int(self.catalog.year[d]) for d in allowed}:  # a year none of the items is from
            return False
        allowed_titles = {t.lower() for d in allowed for t in (self.catalog.titles[d], self.catalog.name(d))}
        quoted = re.findall(r"[\"“«]([^\"”»]{2,80})[\"”»]", text) + re.findall(r"([A-Z][\w' :-]{2,60}) \(\d{4}\)", text)
        return all(q.strip().lower() in allowed_titles for q in quoted)

    def respond(self, text: str) -> ChatReply:
        """The assistant's reply to one user message."""
        if not isinstance(text, str):
            raise DataError(f"a chat message must be text, got {type(text).__name__}")
        c, named = self.understand(text)
        self.constraints = self.constraints.merge(c)
        asked_about = [d for d in named if re.search(r"\b(tell me about|what is|what's|who|when|which year)\b",
                                                      text.lower())]  # fmt: skip
        self.mentioned += [d for d in named if d not in self.mentioned and d not in asked_about]
        action, attribute = self._llm_action(text) if self.llm is not None else ("", None)
        if not action:  # the rule-based manager (also the fallback of a malformed LLM decision)
            if asked_about:
                action = "answer"
            else:
                attribute = self.informative_attribute() if len(self.asked) < self.max_questions else None
                action = "ask" if attribute else "recommend"
        if action == "answer" and not (asked_about or named):
            action = "recommend"
        settled = set(self.asked) | set(self.constraints.want) | ({"year"} if self.constraints.year else set())
        if action == "ask" and (attribute is None or attribute in settled):
            attribute = self.informative_attribute()
            action = "ask" if attribute and len(self.asked) < self.max_questions + 1 else "recommend"
        reply = self._act(action, attribute, asked_about or named)
        self.turns.append({"user": text, "assistant": reply.text, "action": reply.action,
                           "items": [i["item_id"] for i in reply.items]})  # fmt: skip
        return reply

    def _act(self, action: str, attribute: str | None, named: list[int]) -> ChatReply:
        if action == "answer":
            d = named[0]
            f = self.catalog.facts(d)
            said = ", ".join(f"{k} {', '.join(v) if isinstance(v, list) else v}" for k, v in f.items()
                             if k not in ("item_id", "title"))  # fmt: skip
            return ChatReply(f"{self.catalog.line(d)}: {said or 'the catalogue has no more about it'}.", "answer",
                             items=[f], withheld=self.withheld)  # fmt: skip
        if action == "ask" and attribute:
            self.asked.append(attribute)
            pool, _ = self.retrieve(50)
            if attribute == "year":
                decades = sorted({int(self.catalog.year[d] // 10 * 10) for d in pool if self.catalog.year[d] > 0})
                examples = ", ".join(f"the {x}s" for x in decades[-4:])
            else:
                counts: dict[str, int] = {}
                for d in pool:
                    for v in self.catalog.words[attribute][d]:
                        counts[v] = counts.get(v, 0) + 1
                top = sorted(counts, key=lambda v: (-counts[v], v))[:4]
                examples = ", ".join(self.catalog.display[attribute][v] for v in top)
            return ChatReply(QUESTIONS[attribute].format(examples=examples), "ask", attribute=attribute,
                             withheld=self.withheld)  # fmt: skip
        items, relaxed = self.retrieve()
        self.shown.update(items)
        default = (
            "Here is what I found"
            + (f" for {self.constraints.describe()}" if not self.constraints.empty() else " for you")
            + (" (nothing met every wish, so these are the closest)" if relaxed else "")
            + ":"
        )
        lead = self._lead(items, default)
        lines = [f"{n}. {self.catalog.line(d)}" for n, d in enumerate(items, 1)]
        return ChatReply("\n".join([lead, *lines]), "recommend", items=[self.catalog.facts(d) for d in items],
                         relaxed=relaxed, withheld=self.withheld)  # fmt: skip
