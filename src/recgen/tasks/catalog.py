"""The catalogue as the task level sees it: what exists and what is true about it.

Every item a task shows comes from here (its id, title and attribute values are the data's, never a model's
words), and every constraint a conversation puts on items is checked against it. Built from a fitted model (its
vocabulary and the item table saved with it) or a dataset.

Attributes read from the item table, where present: ``genre`` (``genres``), ``category`` (``categories`` /
``category``), ``brand``, ``year``, ``price``. Numeric anonymised attributes (the S3-Rec ``attributes`` ids) are not
words and are not used in text. Where the table has none of these words but titles, a ``kind`` is read from each
title (``recgen.data.text.title_kinds``: its most widely used word, e.g. "nail", "shampoo").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recgen.errors import DataError

WORD_ATTRIBUTES = {"genres": "genre", "categories": "category", "category": "category", "brand": "brand"}


@dataclass
class Constraints:
    """Hard filters of a conversation: wanted / unwanted attribute values, a year range, a price cap."""

    want: dict[str, set[str]] = field(default_factory=dict)  # attribute -> values (any of them)
    avoid: dict[str, set[str]] = field(default_factory=dict)
    year: tuple[int, int] | None = None
    max_price: float | None = None

    def merge(self, other: Constraints) -> Constraints:
        want = {k: set(v) for k, v in self.want.items()}
        for k, v in other.want.items():
            want[k] = set(v)  # a new wish for an attribute replaces the old one
        avoid = {k: set(v) for k, v in self.avoid.items()}
        for k, v in other.avoid.items():
            avoid.setdefault(k, set()).update(v)
        return Constraints(want, avoid, other.year or self.year, other.max_price or self.max_price)

    def empty(self) -> bool:
        return not (self.want or self.avoid or self.year or self.max_price)

    def describe(self) -> str:
        parts = [f"{k}: {' or '.join(sorted(v))}" for k, v in sorted(self.want.items())]
        parts += [f"no {' or '.join(sorted(v))}" for _, v in sorted(self.avoid.items())]
        if self.year:
            parts.append(f"{self.year[0]}-{self.year[1]}")
        if self.max_price is not None:
            parts.append(f"under {self.max_price:g}")
        return ", ".join(parts) or "none"


class Catalog:
    def __init__(self, ids: list[str], table: Any) -> None:
        """``ids``: external ids by dense id (index 0 = padding, ``""``); ``table``: the item table (or None)."""
        self.ids = ids
        n = len(ids)
        self.titles = [""] + [str(i) for i in ids[1:]]
        self.words: dict[str, list[set[str]]] = {}  # attribute -> per dense item, lower-case values
        self.display: dict[str, dict[str, str]] = {}  # attribute -> lower-case value -> as the data writes it
        self.year = np.zeros(n)
        self.price = np.full(n, np.nan)
        self.index = {e: d for d, e in enumerate(ids) if d}
        if table is not None:
            dense = [self.index.get(str(x), 0) for x in table.column(0).to_pylist()]
            names = table.column_names
            if "title" in names:
                for d, t in zip(dense, table.column("title").to_pylist(), strict=True):
                    if d and t:
                        self.titles[d] = str(t)
            for col, attr in WORD_ATTRIBUTES.items():
                if col not in names:
                    continue
                per = self.words.setdefault(attr, [set() for _ in range(n)])
                shown = self.display.setdefault(attr, {})
                for d, v in zip(dense, table.column(col).to_pylist(), strict=True):
                    for x in v if isinstance(v, list | tuple) else [v]:
                        if d and x not in (None, "") and not isinstance(x, int | float):
                            per[d].add(str(x).lower())
                            shown.setdefault(str(x).lower(), str(x))
            for col, arr in (("year", self.year), ("price", self.price)):
                if col in names:
                    for d, v in zip(dense, table.column(col).to_pylist(), strict=True):
                        try:
                            arr[d] = float(v) if d and v not in (None, "") else arr[d]
                        except (TypeError, ValueError):
                            pass
        if not self.words and any(self.titles[1:]):  # nothing named: the kind of thing a title names
            from recgen.data.text import title_kinds

            per = self.words.setdefault("kind", [set() for _ in range(n)])
            shown = self.display.setdefault("kind", {})
            for d, k in enumerate(title_kinds(self.titles[1:]), 1):
                if k:
                    per[d].add(k)
                    shown.setdefault(k, k)
        self.has_year = bool((self.year > 0).any())
        self.has_price = bool(np.isfinite(self.price).any())
        self._choices = {d: t for d, t in enumerate(self.titles) if d}

    @classmethod
    def from_model(cls, model: Any) -> Catalog:
        ids = [""] + [str(x) for x in model.items_.external(np.arange(1, model.items_.size))]
        return cls(ids, getattr(model, "item_table_", None))

    @classmethod
    def from_dataset(cls, ds: Any) -> Catalog:
        ids = [""] + [str(x) for x in ds.items.external(np.arange(1, ds.items.size))]
        return cls(ids, ds.item_table)

    # ------------------------------------------------------------------------------------ facts
    @property
    def size(self) -> int:
        return len(self.ids)

    def dense(self, item_id: str) -> int:
        d = self.index.get(str(item_id), 0)
        if not d:
            raise DataError(f"item {item_id!r} is not in the catalogue")
        return d

    def values(self, attribute: str) -> list[str]:
        """Every value of a word attribute, as the data writes them."""
        return sorted(self.display.get(attribute, {}).values())

    def facts(self, d: int) -> dict[str, Any]:
        """What the data says about one item: its id, title and attribute values."""
        out: dict[str, Any] = {"item_id": self.ids[d], "title": self.titles[d]}
        for attr, per in self.words.items():
            if per[d]:
                out[attr] = sorted(self.display[attr][v] for v in per[d])
        if self.year[d] > 0:
            out["year"] = int(self.year[d])
        if np.isfinite(self.price[d]):
            out["price"] = float(self.price[d])
        return out

    def name(self, d: int) -> str:
        """The title as a sentence says it: a trailing article moved to the front (``Birdcage, The`` -> ``The
        Birdcage``)."""
        m = re.match(r"^(.*), (The|A|An)$", self.titles[d])
        return f"{m.group(2)} {m.group(1)}" if m else self.titles[d]

    def line(self, d: int) -> str:
        """``Title (year; genre, genre)`` for display and prompts."""
        f = self.facts(d)
        extra = "; ".join(x for x in (str(f.get("year", "")), ", ".join(f.get("genre", f.get("category", [])))) if x)
        return self.name(d) + (f" ({extra})" if extra else "")

    def holds(self, d: int, attribute: str, value: Any) -> bool:
        """Whether item ``d`` has ``value`` for ``attribute`` (the groundedness check of every claim)."""
        if attribute == "year":
            return self.year[d] > 0 and int(self.year[d]) == int(value)
        if attribute == "price":
            return bool(np.isfinite(self.price[d]) and abs(self.price[d] - float(value)) < 1e-6)
        return str(value).lower() in self.words.get(attribute, [set()] * self.size)[d]

    # ---------------------------------------------------------------------------------- filters
    def mask(self, c: Constraints) -> np.ndarray:
        """(size,) bool: the items that satisfy every constraint (padding never)."""
        ok = np.ones(self.size, dtype=bool)
        ok[0] = False
        for attr, wanted in c.want.items():
            per = self.words.get(attr)
            if per is not None:
                ok &= np.fromiter((bool(s & wanted) for s in per), bool, self.size)
        for attr, unwanted in c.avoid.items():
            per = self.words.get(attr)
            if per is not None:
                ok &= np.fromiter((not (s & unwanted) for s in per), bool, self.size)
        if c.year and self.has_year:
            ok &= (self.year >= c.year[0]) & (self.year <= c.year[1])
        if c.max_price is not None and self.has_price:
            ok &= np.nan_to_num(self.price, nan=np.inf) <= c.max_price
        return ok

    def lookup(self, text: str, limit: int = 3, cutoff: float = 80.0) -> list[tuple[int, float]]:
        """Items whose title matches ``text`` (fuzzy: rapidfuzz WRatio), best first, with the match score."""
        from rapidfuzz import fuzz, process, utils

        found = process.extract(text, self._choices, scorer=fuzz.WRatio, processor=utils.default_process, limit=limit,
                                score_cutoff=cutoff)  # fmt: skip
        return [(int(key), float(score)) for _, score, key in found]

    def mentioned(self, text: str) -> list[int]:
        """Catalogue items whose full title appears in ``text`` as whole words (titles of 2+ words or 6+ chars)."""
        t = " " + re.sub(r"[^0-9a-z]+", " ", text.lower()) + " "
        out = []
        for d, title in self._choices.items():
            for form in {title, self.name(d)}:
                n = re.sub(r"[^0-9a-z]+", " ", form.lower()).strip()
                if (" " in n or len(n) >= 6) and f" {n} " in t:
                    out.append(d)
                    break
        return out

    # ------------------------------------------------------------------------ understanding text
    def constraints_in(self, text: str) -> Constraints:
        """Constraints stated in a user's words, read against the catalogue (only values that exist): attribute
        values named (``not`` / ``no`` / ``without`` before one = avoid), a decade (``1990s``, ``the 80s``), a year
        (``around 1996``: +-2 years, ``after 2000``, ``before 1980``), a price cap (``under 20``)."""
        low = text.lower()
        c = Constraints()
        for attr in self.words:
            for value in sorted(self.display[attr], key=len, reverse=True):
                for m in re.finditer(rf"\b{re.escape(value)}\b", low):
                    before = low[max(0, m.start() - 25) : m.start()]
                    side = c.avoid if re.search(r"\b(no|not|without|hate|nothing)\b[^,.;]*$", before) else c.want
                    side.setdefault(attr, set()).add(value)
        if self.has_year:
            if m := re.search(r"\b(?:19|20)?(\d0)'?s\b", low):
                decade = int(m.group(1))
                start = (1900 if decade >= 30 else 2000) + decade if len(m.group(0)) <= 4 else int(m.group(0)[:4])
                c.year = (start, start + 9)
            if m := re.search(r"\b(around|about|from|after|since|before|in)\s+((?:19|20)\d\d)\b", low):
                y = int(m.group(2))
                c.year = {"after": (y, 3000), "since": (y, 3000), "before": (0, y)}.get(m.group(1), (y - 2, y + 2))
        if self.has_price and (m := re.search(r"\b(?:under|below|less than|cheaper than)\s*\$?(\d+(?:\.\d+)?)", low)):
            c.max_price = float(m.group(1))
        return c
