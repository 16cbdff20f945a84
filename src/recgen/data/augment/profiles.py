"""``recgen augment profiles``: item and user profiles written by an LLM, as a batch job that survives a kill.

- **Item profiles** (KAR's factual knowledge, LLM-Rec's prompting): the item's title and metadata expanded into a
  short description, genres / kinds and an audience, under a JSON schema.
- **User profiles**: preferences summarised from the user's **training** history only (liked and disliked items of
  the split's training part; a test proves no validation or test interaction reaches a prompt).

The job (``recgen.experiments.augment.run_profiles``) runs on any ``recgen.llm`` backend (the embedded model
offline, or several OpenAI-compatible servers with bounded concurrency, retries and time-outs) through
``recgen.llm.batch``: one fsync'd JSONL line per profile, resumed after a kill (nothing generated twice, nothing
lost), a malformed generation retried then recorded as missing. The result is a versioned Parquet side table
with its provenance (model file SHA-256, prompt version, seed, counts, tokens/s) in a JSON file beside it, both
written atomically.

A small model's profiles are short and sometimes wrong: the item job measures the share of profiles that state a
genre the catalogue says the item does not have (``contradiction_rate``), the share that state a kind with no word
in the item's own text (``unsupported_rate``), and how many are missing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recgen.data.dataset import Dataset
from recgen.data.simulate.agents import build_agents, item_text

PROMPT_VERSION = "profiles-v1"
ITEM_SCHEMA = {
    "type": "object",
    "properties": {
        "description": {"type": "string", "maxLength": 160},
        "genres": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
        "audience": {"type": "string", "maxLength": 40},
    },
    "required": ["description", "genres", "audience"],
}
USER_SCHEMA = {
    "type": "object",
    "properties": {
        "likes": {"type": "string", "maxLength": 120},
        "dislikes": {"type": "string", "maxLength": 80},
        "summary": {"type": "string", "maxLength": 160},
    },
    "required": ["likes", "dislikes", "summary"],
}


def item_jobs(ds: Dataset) -> list[dict[str, Any]]:
    """One prompt per item, from its title and metadata (neutralised text: data, not instructions)."""
    lines = item_text(ds).lines
    ids = ds.items.external(np.arange(1, ds.items.size))
    return [
        {"id": str(i), "prompt": f"Describe this item for a recommender system: {lines[d]}. Give a one-sentence "
                                 f"description, its genres or kinds, and who would enjoy it."}
        for d, i in enumerate(ids, 1)
    ]  # fmt: skip


def user_jobs(train: Dataset, users: Sequence[str] | None = None, *, limit: int = 12) -> list[dict[str, Any]]:
    """One prompt per user from the training part of a split only (the agents' profiles of recgen.data.simulate)."""
    text = item_text(train)
    out = []
    for a in build_agents(train, users):
        liked = "; ".join(text.describe(a.liked[-limit:] or list(map(int, a.history[-limit:])), limit)) or "nothing"
        disliked = "; ".join(text.describe(a.disliked[-limit // 2 :], limit)) or "nothing in particular"
        prompt = (f"A user liked: {liked}. They disliked: {disliked}. Summarise their taste: what they like, what "
                  f"they dislike, in short phrases.")  # fmt: skip
        out.append({"id": a.user, "prompt": prompt})
    return out


def _named(tags: set[str]) -> set[str]:
    """An item's genre / kind names, lowercased (attribute ids name nothing a profile could state)."""
    return {t.split(":", 1)[1].lower() for t in tags if not t.startswith("attributes:")}


def _checkable_values(tags: list[set[str]]) -> set[str]:
    """The catalogue's genre / kind values (lowercased) that a profile's words can be checked against."""
    return set().union(*map(_named, tags))


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]{3,}", text.lower())) - {"and", "the", "for", "with"}


def contradictions(ds: Dataset, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Share of item profiles that state a catalogue genre / kind the item does not have (``contradiction_rate``,
    over the profiles that state a named catalogue value or whose item has one). A catalogue that names no genre
    or kind (the Amazon sets here carry category and brand ids) cannot contradict a profile: checked 0, rate None,
    and the reason. ``unsupported_rate``: the share of profiles stating a kind none of whose words (3+ letters) is
    in the item's own title, year or tags: new to the catalogue, world knowledge or invention, not told apart."""
    text = item_text(ds)
    named = [_named(t) for t in text.tags]
    known = set().union(*named)
    bad = checked = stated_any = new = 0
    for r in rows:
        if r.get("status") != "ok" or not isinstance(r.get("json"), dict):
            continue
        d = int(ds.items.index(str(r["id"]), default=0))
        genres = [str(g).strip().lower() for g in r["json"].get("genres", []) if isinstance(g, str) and g.strip()]
        own_words = _words(text.lines[d])
        stated_any += bool(genres)
        new += any(not _words(g) & own_words for g in genres)
        stated = set(genres) & known  # only values the catalogue knows can be checked
        if stated or named[d]:
            checked += 1
            bad += bool(stated - named[d])
    out: dict[str, Any] = {"checked": checked, "contradicting": bad,
                           "contradiction_rate": bad / checked if checked else None,
                           "stating_a_kind": stated_any, "unsupported": new,
                           "unsupported_rate": new / stated_any if stated_any else None}  # fmt: skip
    if not known:
        out["reason"] = f"{ds.name}'s item table names no genre or kind (ids only): nothing for a profile to contradict"
    return out


def user_contradictions(train: Dataset, rows: list[dict[str, Any]], *, limit: int = 12) -> dict[str, Any]:
    """Share of user profiles whose ``likes`` name a catalogue genre / kind that none of the liked items shown in
    the user's prompt has (a taste the evidence does not give; ``user_jobs``' items, same ``limit``). Only values
    the catalogue knows can be checked, matched as whole words."""
    import re

    tags = item_text(train).tags
    known = _checkable_values(tags)
    patterns = {g: re.compile(rf"(?<![\w-]){re.escape(g)}(?![\w-])") for g in known if g}
    ok = {str(r["id"]): r["json"] for r in rows if r.get("status") == "ok" and isinstance(r.get("json"), dict)}
    bad = checked = 0
    for a in build_agents(train, [u for u in ok if train.users.index(u, default=0)]):
        likes = str(ok[a.user].get("likes") or "").lower()
        stated = {g for g, p in patterns.items() if p.search(likes)}
        if not stated:
            continue
        shown = a.liked[-limit:] or list(map(int, a.history[-limit:]))
        own = {t.split(":", 1)[1].lower() for i in shown for t in tags[int(i)]}
        checked += 1
        bad += bool(stated - own)
    return {"checked": checked, "contradicting": bad, "contradiction_rate": bad / checked if checked else None}


def write_side_table(rows: list[dict[str, Any]], path: Path, kind: str) -> Path:
    """The profiles as a Parquet table (id, status, fields, raw text), written atomically."""
    from recgen.io import atomic_write_file

    fields = list((ITEM_SCHEMA if kind == "items" else USER_SCHEMA)["properties"])
    cols: dict[str, list[Any]] = {"id": [], "status": [], "text": []}
    cols.update({f: [] for f in fields})
    for r in sorted(rows, key=lambda r: str(r["id"])):
        j = r.get("json") if isinstance(r.get("json"), dict) else {}
        cols["id"].append(str(r["id"]))
        cols["status"].append(r.get("status"))
        cols["text"].append(r.get("text"))
        for f in fields:
            v = j.get(f)
            cols[f].append(json.dumps(v) if isinstance(v, list) else (None if v is None else str(v)))
    table = pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()})
    atomic_write_file(path, lambda tmp: pq.write_table(table, tmp))
    return path


def _profile_rows(path: Path, kind: str) -> list[dict[str, Any]]:
    """The rows of a ``<kind>_profiles.parquet`` side table (id, status and the schema's fields); a missing or
    unreadable table is a DataError naming the job that makes it."""
    from recgen.errors import DataError

    name = kind.removesuffix("s")
    if not Path(path).is_file():
        raise DataError(
            f"{path}: no {name} profiles there; make them with recgen augment profiles DATASET --kind {kind}"
        )
    fields = list((ITEM_SCHEMA if kind == "items" else USER_SCHEMA)["properties"])
    try:
        return pq.read_table(path, columns=["id", "status", *fields]).to_pylist()
    except (pa.ArrowException, OSError, KeyError) as exc:
        article = "an" if name == "item" else "a"
        msg = f"{path}: not {article} {name} profile table ({exc}); regenerate it with recgen augment profiles"
        raise DataError(msg) from None


def read_item_profiles(path: Path) -> dict[str, str]:
    """External item id -> its profile as one text ("description; genres: ...; audience: ...") for the items whose
    generation succeeded, from a side table ``write_side_table`` wrote. A missing or unreadable table is a
    DataError naming the job that makes it."""
    rows = _profile_rows(path, "items")
    out = {}
    for r in rows:
        if r["status"] != "ok" or not r["description"]:
            continue
        parts = [str(r["description"]).strip()]
        try:
            genres = [str(g) for g in json.loads(r["genres"] or "[]") if str(g).strip()]
        except (ValueError, TypeError):
            genres = []
        if genres:
            parts.append("genres: " + ", ".join(genres))
        if r["audience"]:
            parts.append(f"audience: {r['audience']}")
        out[str(r["id"])] = "; ".join(parts)
    return out


def read_user_profiles(path: Path) -> dict[str, str]:
    """External user id -> the user's profile as one text ("likes: ...; dislikes: ...; summary") for the users whose
    generation succeeded, from the side table of ``recgen augment profiles --kind users`` (written from the training
    part of the split only). A missing or unreadable table is a DataError naming the job that makes it."""
    rows = _profile_rows(path, "users")
    out = {}
    for r in rows:
        if r["status"] != "ok":
            continue
        parts = [f"{k}: {str(r[k]).strip()}" for k in ("likes", "dislikes") if r[k] and str(r[k]).strip()]
        if r["summary"] and str(r["summary"]).strip():
            parts.append(str(r["summary"]).strip())
        if parts:
            out[str(r["id"])] = "; ".join(parts)
    return out
