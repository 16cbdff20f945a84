"""Sequence files: one user per line, ``user item item ...`` in time order (SASRec/S3-Rec/P5), JSON files mapping
each user to a time-ordered list of items (LETTER/P5 exports), the S3-Rec folders (with item attributes) and the
Amazon 2014 P5/TIGER folders (with short titles)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from recgen.data.dataset import Dataset, from_columns
from recgen.data.formats.text import check_exists, iter_lines, read_json
from recgen.errors import DataError


def load_sequences(path: str | os.PathLike[str], *, name: str | None = None, sep: str | None = None) -> Dataset:
    """Load a text file with one user per line: ``user item item ...`` in time order.

    Timestamps are the positions within each line (recorded as ``timestamp_source = "position"``).
    """
    path = Path(path)
    check_exists(path)
    users: list[str] = []
    items: list[str] = []
    for lineno, line in iter_lines(path):
        fields = line.split(sep)
        if len(fields) < 2:
            raise DataError(
                f"line {lineno} of {path.name}: expected 'user item [item ...]' (at least 2 "
                f"{'whitespace' if sep is None else repr(sep)}-separated fields), got {len(fields)}"
            )
        users.extend([fields[0]] * (len(fields) - 1))
        items.extend(fields[1:])
    if not users:
        raise DataError(f"{path} is empty: it holds no 'user item ...' lines")
    return from_columns(users, items, None, name=name or path.stem, meta={"format": "sequences", "source": str(path)})


def load_json_sequences(path: str | os.PathLike[str], *, name: str | None = None) -> Dataset:
    """Load a JSON file mapping each user to a time-ordered list of items: ``{"u1": ["i3", "i7"], ...}``, or a
    list of ``{"user": ..., "items": [...]}`` objects (also JSON lines). Timestamps are the positions."""
    path = Path(path)
    check_exists(path)
    records = _json_records(path)
    users: list[str] = []
    items: list[str] = []
    for where, user, seq in records:
        if not isinstance(seq, list) or not all(isinstance(i, str | int) and not isinstance(i, bool) for i in seq):
            raise DataError(
                f"{path.name}: {where} must map to a list of item ids (strings or integers), got {seq!r:.60}"
            )
        users.extend([str(user)] * len(seq))
        items.extend(str(i) for i in seq)
    if not users:
        raise DataError(f"{path} holds no user with items")
    meta = {"format": "json-sequences", "source": str(path)}
    return from_columns(users, items, None, name=name or path.stem, meta=meta)


def _json_records(path: Path) -> list[tuple[str, Any, Any]]:
    """(where, user, items) of a user -> items mapping, a list of records, or JSON lines of records."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise DataError(f"{path.name}: not JSON (nor JSON lines) ({exc}); the file may be truncated") from None
    if isinstance(data, dict):
        return [(f"user {u!r}", u, seq) for u, seq in data.items()]
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        out = []
        for n, r in enumerate(data, 1):
            user = next((r[k] for k in ("user", "user_id", "uid") if k in r), None)
            seq = next((r[k] for k in ("items", "item_ids", "sequence", "history") if k in r), None)
            if user is None or seq is None:
                raise DataError(f"{path.name}: record {n} needs a user (user/user_id) and items (items/sequence)")
            out.append((f"record {n}", user, seq))
        return out
    raise DataError(f"{path.name}: expected an object mapping users to item lists, got {type(data).__name__}")


def looks_like_json_sequences(path: Path) -> bool:
    """Whether a .json file maps users to item lists (rather than holding review records)."""
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(4096).lstrip()
    except (OSError, UnicodeDecodeError):
        return False
    if head.startswith("{"):  # an object: user -> list, or the first of JSON-lines records
        first = head.split("\n", 1)[0]
        return '": [' in first[:2000] or '":[' in first[:2000]
    return head.startswith("[")


def load_s3rec(path: str | os.PathLike[str], *, name: str | None = None) -> Dataset:
    """Load an S3-Rec data folder: ``s3rec_sequences.txt`` + ``s3rec_item2attributes.json`` (+ Yelp titles)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    seq = folder / "s3rec_sequences.txt" if path.is_dir() else path
    ds = load_sequences(seq, name=name or folder.name)
    fields: dict[str, list[Any]] = {"item_id": ds.items.ids}
    letter = folder / "letter_items.json"
    if letter.exists():  # Yelp (LETTER): key k describes S3-Rec item k+1
        meta = read_json(letter)
        fields["title"] = [meta.get(str(int(i) - 1), {}).get("title") for i in ds.items.ids]
        fields["categories"] = [
            [c.strip() for c in (meta.get(str(int(i) - 1), {}).get("description") or "").split(",") if c.strip()]
            for i in ds.items.ids
        ]
    attrs = folder / "s3rec_item2attributes.json"
    if attrs.exists():
        amap = read_json(attrs)
        fields["attributes"] = [amap.get(i, []) for i in ds.items.ids]
    if len(fields) > 1:
        ds.item_table = pa.table(fields)
    ds.meta.update(format="s3rec", source=str(folder))
    return ds


def load_amazon_p5(path: str | os.PathLike[str], *, name: str | None = None) -> Dataset:
    """Load an Amazon 2014 P5/TIGER folder: ASIN sequences, short titles and S3-Rec attributes (if present)."""
    folder = Path(path)
    check_exists(folder / "user_sequence.txt")
    ds = load_sequences(folder / "user_sequence.txt", name=name or folder.name)
    fields: dict[str, list[Any]] = {"item_id": ds.items.ids}
    titles_file = folder / "item_short_title.txt"
    if titles_file.exists():
        titles: dict[str, str] = {}
        for _, line in iter_lines(titles_file):
            asin, _, title = line.partition(" ")
            titles[asin] = title
        fields["title"] = [titles.get(a) for a in ds.items.ids]
    maps, attrs = folder / "p5_datamaps.json", folder / "s3rec_item2attributes.json"
    if maps.exists() and attrs.exists():
        asin2id = {asin: pid for pid, asin in read_json(maps)["id2item"].items()}
        amap = read_json(attrs)
        fields["attributes"] = [amap.get(asin2id.get(a, ""), []) for a in ds.items.ids]
    if len(fields) > 1:
        ds.item_table = pa.table(fields)
    ds.meta.update(format="amazon-p5", source=str(folder))
    return ds
