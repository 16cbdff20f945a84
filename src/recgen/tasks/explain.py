"""Grounded explanations: why this item for this user, citing the user's own history items that drive the score
and the item's real attributes.

Which history items drive a score is measured on the model, not guessed: the **occlusion** of each history item
(the item's score with the full history minus its score with that one item left out; Zeiler & Fergus's occlusion,
applied to the input sequence). For EASE this equals the learnt weight B[j, i] (scores are linear in the history),
which a test checks; for ItemKNN the similarity; for SASRec / HSTU it is the model's own response to removing the
item (attention weights are not explanations, removal is what faithfulness measures). Models whose score does not
depend on the history (a user embedding, BPR) get no citations and say so; TIGER (its scores come from a beam) is
not explained by occlusion here.

The explanation holds: up to ``n_cited`` history items with the largest positive occlusion, the item's attribute
values that the cited items share (checked against the catalogue), and a sentence: a template, or the LLM's
verbalisation under a JSON schema, shown only if it names no title but the item and the cited ones and no
attribute value the item does not have (else the template, and the generation is counted as withheld).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recgen.errors import DataError
from recgen.tasks.catalog import Catalog


@dataclass
class Explanation:
    user: str
    item: str
    text: str
    cited: list[dict[str, Any]] = field(default_factory=list)  # item_id, title, contribution
    shared: dict[str, list[str]] = field(default_factory=dict)  # attribute -> values the item and cited share
    source: str = "template"  # template | llm
    withheld: bool = False  # an LLM sentence was generated and not shown


def occlusion(model: Any, user: int, history: np.ndarray, item: int, batch: int = 256) -> np.ndarray:
    """(len(history),): the item's score with the full history minus its score with each history item removed."""
    history = np.asarray(history, dtype=np.int64)
    variants = [history] + [np.delete(history, j) for j in range(len(history))]
    out = []
    with torch.no_grad():
        for start in range(0, len(variants), batch):
            chunk = variants[start : start + batch]
            s = model.score(np.full(len(chunk), user, dtype=np.int64), chunk)
            out.append(s[:, item].double().numpy())
    scores = np.concatenate(out)
    if user == 0 and len(history) == 1:
        # the one variant is an empty history, which score() answers with popularity (cold start): the model's
        # own answer to no evidence is what removing the item leaves
        scores[1] = _no_evidence_score(model, item)
    return scores[0] - scores[1:]


def _no_evidence_score(model: Any, item: int) -> float:
    """The model's raw score of ``item`` for an unknown user with an empty history (0 where it cannot say)."""
    try:
        args = [np.zeros(1, dtype=np.int64), [np.zeros(0, dtype=np.int64)]]
        if model.uses_timestamps:
            args.append([np.zeros(0)])
        with torch.no_grad():
            return float(torch.as_tensor(model._score(*args))[0, item])
    except Exception:  # noqa: BLE001 - a model that cannot score an empty history: no evidence scores 0
        return 0.0


class Explainer:
    def __init__(self, model: Any, *, llm: Any = None, n_cited: int = 3, catalog: Catalog | None = None) -> None:
        self.model, self.llm, self.n_cited = model, llm, n_cited
        self.catalog = catalog or Catalog.from_model(model)
        self.withheld = 0

    def explain(self, user: str, item: str, history: list[str] | None = None) -> Explanation:
        """Why ``item`` for ``user`` (its training history, or ``history``: item ids in time order)."""
        m = self.model
        u = int(m.users_.index(user, default=0))
        if history is not None:
            hist = m.items_.lookup(history, default=0)
            hist = hist[hist > 0]
        else:
            if u <= 0:
                raise DataError(f"user {user!r} is not in the model's training data; pass the history instead")
            hist = m.train_history(u)
        d = int(m.items_.index(item, default=0))
        if d <= 0:
            raise DataError(f"item {item!r} is not in the catalogue")
        if len(hist) == 0:
            return Explanation(str(user), str(item), f"{self.catalog.name(d)}: there is no history to explain it by.")
        contrib = occlusion(m, u, hist, d)
        order = [j for j in np.argsort(-contrib, kind="stable") if contrib[j] > 1e-9][: self.n_cited]
        cited = [int(hist[j]) for j in order]
        seen: set[int] = set()
        cited_rows = []
        for j, c in zip(order, cited, strict=True):
            if c in seen:
                continue
            seen.add(c)
            cited_rows.append({"item_id": self.catalog.ids[c], "title": self.catalog.name(c),
                               "contribution": float(contrib[j])})  # fmt: skip
        shared = self._shared(d, [r["item_id"] for r in cited_rows])
        text = self.template(d, cited_rows, shared)
        exp = Explanation(str(user), str(item), text, cited_rows, shared)
        if self.llm is not None and cited_rows:
            said = self._verbalise(d, cited_rows, shared)
            if said is None:
                exp.withheld = True
            else:
                exp.text, exp.source = said, "llm"
        return exp

    def _shared(self, d: int, cited: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        cat = self.catalog
        for attr, per in cat.words.items():
            common = set(per[d])
            if not common or not cited:
                continue
            counts = {v: sum(v in per[cat.dense(c)] for c in cited) for v in common}
            keep = sorted(v for v, n in counts.items() if n > 0)
            if keep:
                out[attr] = [cat.display[attr][v] for v in keep]
        if cat.has_year and cat.year[d] > 0 and cited:
            decade = int(cat.year[d] // 10 * 10)
            if any(int(cat.year[cat.dense(c)] // 10 * 10) == decade for c in cited):
                out["decade"] = [f"{decade}s"]
        return out

    def template(self, d: int, cited: list[dict[str, Any]], shared: dict[str, list[str]]) -> str:
        title = self.catalog.name(d)
        if not cited:
            return f"{title}: your history does not change this model's score for it (it is not explained by it)."
        names = [c["title"] for c in cited]
        because = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
        like = "; ".join(f"{', '.join(v)}" for v in shared.values())
        return f"Recommended because you liked {because}" + (f": like them, it is {like}." if like else ".")

    def _verbalise(self, d: int, cited: list[dict[str, Any]], shared: dict[str, list[str]]) -> str | None:
        schema = {"type": "object", "properties": {"why": {"type": "string", "maxLength": 200}}, "required": ["why"]}
        facts = "; ".join(f"{k}: {', '.join(v)}" for k, v in shared.items()) or "none in common"
        prompt = (
            f"Explain in one sentence why {self.catalog.name(d)} is recommended to a user who liked "
            f"{', '.join(c['title'] for c in cited)}. Shared attributes: {facts}. Use only these facts."
        )
        try:
            g = self.llm.chat(prompt, max_tokens=100, temperature=0.0, json_schema=schema)
            text = str(g.json()["why"]).strip()
        except Exception:  # noqa: BLE001 - a malformed generation: the template is shown
            self.withheld += 1
            return None
        if not text or not self.grounded(text, d, [self.catalog.dense(c["item_id"]) for c in cited]):
            self.withheld += 1
            return None
        return text

    def grounded(self, text: str, d: int, cited: list[int]) -> bool:
        """``text`` names no title but the item's and the cited items', and no catalogue attribute value the item
        does not have."""
        cat = self.catalog
        if set(cat.mentioned(text)) - {d, *cited}:
            return False
        low = " " + re.sub(r"[^0-9a-z]+", " ", text.lower()) + " "
        for attr, per in cat.words.items():
            for v in cat.display[attr]:
                if len(v) > 2 and f" {re.sub(r'[^0-9a-z]+', ' ', v).strip()} " in low and v not in per[d]:
                    return False
        return True
