"""A simulated user for conversational recommenders: it holds a hidden target item and never names it.

The user stands for one real user: it knows that user's training history and holds the user's *next* item (the
held-out target) as what it is looking for. A conversational recommender talks to it turn by turn through two
small types, the interface of the conversational task (``recgen.tasks``):

- the recommender sends a ``RecommenderTurn``: ``ask`` (about an attribute: ``genre``, ``year``, ``category``,
  ``brand``, or a free question in ``text``), ``recommend`` (a list of item ids), or ``say`` (anything else);
- the user answers with a ``UserTurn``: its text, the item it accepted (the target, if recommended), the items it
  rejected, whether the episode is over, and whether its text leaked the target.

Answers about attributes come from the target's metadata, never from the model's memory: the facts are the
catalogue's, phrased by a template or, with an LLM, paraphrased under a JSON schema. Every answer passes the
**leak check** before it is delivered: if the target's title, or an alias of it (the title without its year,
without a leading article or a parenthesised part, the item id), appears as whole words, the episode fails
(``leaked``), as iEvaLM's simulator was shown to leak its target (Wang et al., 2023). The check is deliberately
strict: a one-word title (``Heat``) used as an ordinary word also fails the episode. An LLM paraphrase is also
checked for invented attributes: genres / categories of the catalogue named in the answer that the target does not
have are counted (``invented``), and the answer falls back to the template.

The episode ends when the user accepts the target (success), or after ``max_turns`` recommender turns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from recgen.data.dataset import Dataset, title_map
from recgen.data.simulate.agents import item_text
from recgen.data.text import title_kinds
from recgen.errors import DataError

TurnKind = Literal["ask", "recommend", "say"]
ATTRIBUTES = ("genre", "year", "category", "brand", "kind")


@dataclass
class RecommenderTurn:
    kind: TurnKind
    attribute: str | None = None  # for ask: one of ATTRIBUTES, or None for a free question (text)
    text: str = ""
    items: list[str] = field(default_factory=list)  # for recommend: external item ids, best first


@dataclass
class UserTurn:
    text: str
    accepted: str | None = None  # the target's id, when it was among the recommended items
    rejected: list[str] = field(default_factory=list)
    done: bool = False
    leaked: bool = False
    invented: int = 0  # attribute values of the catalogue named in an LLM answer that the target does not have


def _norm(text: str) -> str:
    return " " + re.sub(r"[^0-9a-z]+", " ", text.lower()).strip() + " "


def title_aliases(title: str, item_id: str = "") -> list[str]:
    """The forms a title can be named by: as is, without a ``(year)``, without parenthesised parts (and those
    parts alone, e.g. ``Se7en``), with a trailing ``, The`` moved to the front or dropped; and the item id if it
    is not a plain number. Normalised (lower case, punctuation as spaces)."""
    forms = {title}
    bare = re.sub(r"\s*\(\d{4}\)\s*$", "", title).strip()
    forms.add(bare)
    forms.update(p.strip() for p in re.findall(r"\(([^()]*[A-Za-z][^()]*)\)", bare))
    no_paren = re.sub(r"\s*\([^()]*\)", "", bare).strip()
    forms.add(no_paren)
    for f in list(forms):
        m = re.match(r"^(.*),\s*(the|a|an|les|la|le|il|das|der|die)$", f, flags=re.IGNORECASE)
        if m:
            forms.update({f"{m.group(2)} {m.group(1)}", m.group(1)})
        m = re.match(r"^(the|a|an)\s+(.+)$", f, flags=re.IGNORECASE)
        if m:
            forms.add(m.group(2))
    if item_id and not item_id.isdigit():
        forms.add(item_id)
    return sorted({_norm(f) for f in forms if len(_norm(f).strip()) >= 2}, key=len, reverse=True)


_PER_DATASET: dict[tuple[str, int], tuple[Dataset, Any]] = {}


def _per_dataset(name: str, train: Dataset, make: Callable[[Dataset], Any]) -> Any:
    """``make(train)``, computed once per dataset object (keyed by identity; a new object that reuses a freed
    object's id is recomputed)."""
    held = _PER_DATASET.get((name, id(train)))
    if held is None or held[0] is not train:
        held = _PER_DATASET[(name, id(train))] = (train, make(train))
    return held[1]


def _catalogue_values(train: Dataset) -> set[str]:
    """Every genre / category / brand value of the catalogue, lower case (for the invented-attribute count)."""
    return _per_dataset("values", train, lambda ds: {
        t.split(":", 1)[1].lower() for s in item_text(ds).tags for t in s if not t.startswith("attributes:")
    })  # fmt: skip


def _kinds(train: Dataset) -> list[str | None]:
    """Per dense item (0 = padding), the kind its title names (``title_kinds``), as the task catalogue reads it."""

    def make(ds: Dataset) -> list[str | None]:
        titles = title_map(ds.item_table)
        ext = ds.items.external(np.arange(1, ds.items.size))
        return [None, *title_kinds([titles.get(str(e), "") for e in ext])]

    return _per_dataset("kinds", train, make)


def leaks(text: str, aliases: Sequence[str]) -> str | None:
    """The alias found in ``text`` as whole words, or None."""
    t = _norm(text)
    return next((a.strip() for a in aliases if a in t), None)


class DialogueUser:
    """One simulated user with a hidden target (see the module docstring)."""

    def __init__(
        self,
        train: Dataset,
        user: str,
        target: str,
        *,
        llm: Any = None,
        max_turns: int = 5,
        liked_titles: int = 3,
    ) -> None:
        if max_turns < 1:
            raise DataError(f"max_turns must be >= 1, got {max_turns}")
        dense = int(train.items.index(target, default=0))
        if dense <= 0:
            raise DataError(f"target item {target!r} is not in the catalogue of {train.name}")
        self.train, self.user, self.target, self.llm, self.max_turns = train, user, target, llm, max_turns
        titles = title_map(train.item_table)
        self.title = titles.get(target, target)
        self.aliases = title_aliases(self.title, target)
        self.facts = self._facts(train, dense, self.title)
        u = int(train.users.index(user, default=0))
        indptr, items, _ = train.user_timelines()
        hist = items[indptr[u] : indptr[u + 1]] if u > 0 else np.zeros(0, np.int64)
        ext = train.items.external(np.asarray(hist[-liked_titles:], dtype=np.int64)) if len(hist) else []
        self.recent = [titles.get(str(i), str(i)) for i in ext]
        self.catalogue_values = _catalogue_values(train)
        self.turns = 0
        self.rejected: list[str] = []
        self.leaked = False
        self.invented = 0

    @staticmethod
    def _facts(train: Dataset, dense: int, title: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for tag in sorted(item_text(train).tags[dense]):
            name, value = tag.split(":", 1)
            key = {"genres": "genre", "categories": "category", "category": "category", "brand": "brand"}.get(name)
            if key:
                out.setdefault(key, []).append(value)
        table = train.item_table
        if table is not None and "year" in table.column_names:
            row = table.column(0).to_pylist().index(str(train.items.external(np.asarray([dense]))[0]))
            value = table.column("year")[row].as_py()
            if value not in (None, ""):
                out["year"] = [str(value)]
        if not out:  # no genre / category / brand: the kind of thing the title names, as the catalogue reads it
            kind = _kinds(train)[dense]
            if kind:
                out["kind"] = [kind]
        year = re.search(r"\((\d{4})\)\s*$", title)
        if year and "year" not in out:
            out["year"] = [year.group(1)]
        return out

    # ---------------------------------------------------------------------------------- answers
    def template_answer(self, attribute: str | None) -> str:
        values = self.facts.get(attribute or "", [])
        if attribute == "year" and values:
            decade = int(values[0]) // 10 * 10
            return f"Something from the {decade}s, around {values[0]}."
        if values:
            joined = values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"
            if attribute == "kind":
                return f"I am looking for something {joined}."
            return f"I am in the mood for something {joined}." if attribute == "genre" else f"{attribute}: {joined}."
        if attribute is None:
            known = [f"{k} {', '.join(v)}" for k, v in self.facts.items() if k != "year"]
            return f"I'd like something with {known[0]}." if known else "Something like what I watched lately."
        return f"I don't mind the {attribute}."

    def _llm_answer(self, question: str, facts: str) -> tuple[str, int]:
        schema = {
            "type": "object",
            "properties": {"reply": {"type": "string", "maxLength": 240}},
            "required": ["reply"],
        }
        prompt = (
            f"You are looking for something to watch. Recently you enjoyed: {'; '.join(self.recent)}.\n"
            f"What you want: {facts}\nThe assistant asks: {question}\n"
            "Reply in one short sentence using only what you want. Do not name any title."
        )
        g = self.llm.chat(prompt, max_tokens=120, temperature=0.0, json_schema=schema)
        try:
            reply = str(g.json().get("reply", "")).strip()
        except Exception:  # noqa: BLE001 - a malformed generation falls back to the template
            return "", 0
        mentioned = {v for v in self.catalogue_values if len(v) > 2 and f" {v} " in _norm(reply)}
        own = {v.lower() for vs in self.facts.values() for v in vs}
        return reply, len(mentioned - own)

    def answer(self, turn: RecommenderTurn) -> UserTurn:
        """The user's reply to one recommender turn (raises DataError for a malformed turn)."""
        if self.done:
            raise DataError("the episode is over; start a new DialogueUser")
        if turn.kind not in ("ask", "recommend", "say"):
            raise DataError(f"turn kind must be ask, recommend or say, got {turn.kind!r}")
        self.turns += 1
        last = self.turns >= self.max_turns
        if turn.kind == "recommend":
            items = [str(i) for i in turn.items]
            if self.target in items:
                return UserTurn(text="Yes, that is what I was looking for.", accepted=self.target, done=True)
            self.rejected += items
            text = "None of these, thanks." + ("" if last else " " + self.template_answer(None))
            return self._deliver(text, rejected=items, done=last)
        text = self.template_answer(turn.attribute if turn.kind == "ask" else None)
        invented = 0
        if self.llm is not None:
            facts = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.facts.items()) or "nothing specific"
            reply, invented = self._llm_answer(
                turn.text or f"What {turn.attribute or 'kind of thing'} do you want?", facts
            )
            self.invented += invented
            if reply and not invented:
                text = reply
            elif reply and leaks(reply, self.aliases):
                text = reply  # a leak is a leak even when the answer was also wrong: the check must see it
        return self._deliver(text, done=last, invented=invented)

    def _deliver(self, text: str, *, rejected: list[str] | None = None, done: bool, invented: int = 0) -> UserTurn:
        hit = leaks(text, self.aliases)
        if hit:
            self.leaked = True
            return UserTurn(text="[withheld: the answer named the target]", rejected=rejected or [], done=True,
                            leaked=True, invented=invented)  # fmt: skip
        return UserTurn(text=text, rejected=rejected or [], done=done, invented=invented)

    @property
    def done(self) -> bool:
        return self.leaked or self.turns >= self.max_turns


Policy = Callable[[DialogueUser, list[tuple[RecommenderTurn, UserTurn]]], RecommenderTurn]


def run_episode(user: DialogueUser, policy: Policy) -> dict[str, Any]:
    """Let ``policy`` (given the user and the transcript so far) talk to ``user`` until the episode ends."""
    transcript: list[tuple[RecommenderTurn, UserTurn]] = []
    while True:
        turn = policy(user, transcript)
        reply = user.answer(turn)
        transcript.append((turn, reply))
        if reply.done:
            break
    return {
        "user": user.user,
        "target": user.target,
        "success": any(r.accepted for _, r in transcript),
        "turns": len(transcript),
        "leaked": user.leaked,
        "invented": user.invented,
        "transcript": [
            {
                "recommender": {"kind": t.kind, "attribute": t.attribute, "text": t.text, "items": t.items},
                "user": {"text": r.text, "accepted": r.accepted, "rejected": r.rejected, "leaked": r.leaked},
            }
            for t, r in transcript
        ],  # fmt: skip
    }
