"""Personalised item text (the survey's personalised content generation; ONCE, Liu et al., WSDM 2024): an item's
description rewritten for one user, with every fact checked against the catalogue.

The generic description is a template over the item's real metadata. The LLM rewrites it for a user, given the
user's liked items (titles and genres from the training history), under a JSON schema. The rewrite is shown only
if it names no attribute value the item lacks (``invented`` counts those values) and no title other than the item's
and the user's own items, and if it says something of the item (its title, one of its attribute values or its year:
"The Great Escape" alone, another title the user liked, is not a description of "Dead Man Walking"); otherwise the
generic description is shown and the generation counted as withheld.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from recgen.tasks.catalog import Catalog


@dataclass
class PersonalText:
    item: str
    generic: str
    text: str  # what is shown: the rewrite, or the generic description when the rewrite failed a check
    rewrite: str  # what the LLM wrote (for the record)
    invented: int  # catalogue attribute values in the rewrite that the item does not have
    withheld: bool


def generic_description(catalog: Catalog, d: int) -> str:
    f = catalog.facts(d)
    kinds = f.get("genre") or f.get("category") or []
    what = f"a {', '.join(kinds).lower()} title" if kinds else "an item of the catalogue"
    year = f" from {f['year']}" if "year" in f else ""
    brand = f" by {', '.join(f['brand'])}" if f.get("brand") else ""
    return f"{f['title']} is {what}{year}{brand}."


def profile_text(catalog: Catalog, liked: list[int], limit: int = 5) -> str:
    return "Liked: " + "; ".join(catalog.line(d) for d in liked[-limit:])


def invented_values(catalog: Catalog, text: str, d: int) -> int:
    low = " " + re.sub(r"[^0-9a-z]+", " ", text.lower()) + " "
    years = {int(y) for y in re.findall(r"\b(1[89]\d\d|20\d\d)\b", text)}
    bad = len(years - {int(catalog.year[d])}) if catalog.has_year else 0  # a year the item is not from
    for attr, per in catalog.words.items():
        for v in catalog.display[attr]:
            if len(v) > 2 and f" {re.sub(r'[^0-9a-z]+', ' ', v).strip()} " in low and v not in per[d]:
                bad += 1
    return bad


def describes_item(catalog: Catalog, text: str, d: int) -> bool:
    """Whether ``text`` names the item, one of its attribute values, or its year."""
    low = " " + re.sub(r"[^0-9a-z]+", " ", text.lower()) + " "
    if d in catalog.mentioned(text) or (catalog.has_year and str(int(catalog.year[d])) in low):
        return True
    return any(f" {re.sub(r'[^0-9a-z]+', ' ', v).strip()} " in low for per in catalog.words.values() for v in per[d])


def personalise(catalog: Catalog, d: int, liked: list[int], llm: Any) -> PersonalText:
    generic = generic_description(catalog, d)
    schema = {"type": "object", "properties": {"text": {"type": "string", "maxLength": 200}}, "required": ["text"]}
    prompt = (f"Rewrite this description in one or two sentences for a user. {profile_text(catalog, liked)}.\n"
              f"Description: {generic}\nUse only the facts in the description.")  # fmt: skip
    try:
        rewrite = str(llm.chat(prompt, max_tokens=100, temperature=0.0, json_schema=schema).json()["text"]).strip()
    except Exception:  # noqa: BLE001 - a malformed generation: the generic text is shown
        rewrite = ""
    invented = invented_values(catalog, rewrite, d) if rewrite else 0
    other_titles = set(catalog.mentioned(rewrite)) - {d, *liked} if rewrite else set()
    ok = bool(rewrite) and invented == 0 and not other_titles and describes_item(catalog, rewrite, d)
    return PersonalText(catalog.ids[d], generic, rewrite if ok else generic, rewrite, invented, not ok)
