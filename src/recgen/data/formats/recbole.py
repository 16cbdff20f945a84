"""RecBole atomic files (``NAME.inter``/``.item``/``.user``, tab-separated, header ``name:type``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from recgen.data.dataset import Dataset, from_columns
from recgen.data.formats.text import check_exists, iter_lines, to_float, transpose
from recgen.errors import DataError

_RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")


def read_atomic(path: Path) -> tuple[list[str], list[str], list[int], list[list[str]]]:
    lines = iter_lines(path)
    try:
        _, header = next(lines)
    except StopIteration:
        raise DataError(f"{path} is empty: a RecBole atomic file needs a header line 'name:type<TAB>...'") from None
    names, types = [], []
    for field in header.split("\t"):
        if ":" not in field:
            raise DataError(
                f"line 1 of {path.name}: header field {field!r} is not 'name:type'; RecBole atomic files are "
                f"tab-separated with typed headers such as 'user_id:token'"
            )
        n, t = field.rsplit(":", 1)
        if t not in _RECBOLE_TYPES:
            raise DataError(f"line 1 of {path.name}: type {t!r} of field {n!r} is not one of {_RECBOLE_TYPES}")
        names.append(n)
        types.append(t)
    linenos, rows = [], []
    for lineno, line in lines:
        fields = line.split("\t")
        if len(fields) != len(names):
            raise DataError(
                f"line {lineno} of {path.name}: expected {len(names)} tab-separated fields, got {len(fields)}; "
                f"check the separator"
            )
        linenos.append(lineno)
        rows.append(fields)
    return names, types, linenos, rows


def load_recbole(path: str | os.PathLike[str], *, name: str | None = None) -> Dataset:
    """Load RecBole atomic files: a folder with ``NAME.inter`` (+ optional ``.item``/``.user``), or the ``.inter``."""
    path = Path(path)
    check_exists(path, "RecBole path")
    if path.is_dir():
        inters = sorted(path.glob("*.inter"))
        if len(inters) != 1:
            raise DataError(f"{path} holds {len(inters)} .inter files, expected exactly 1; pass the .inter file")
        inter = inters[0]
    else:
        inter = path
    stem = inter.with_suffix("")
    names, types, linenos, rows = read_atomic(inter)
    if not rows:
        raise DataError(f"{inter} has a header but no interactions")
    cols = dict(zip(names, transpose(rows), strict=True))
    lists = [n for n, t in zip(names, types, strict=True) if t == "token_seq" and "item" in n]
    if lists:  # one (history -> target) row per line: a split file, not interactions; never drop the history
        raise DataError(
            f"{inter.name} is a RecBole benchmark split file (its {lists[0]!r} field holds item histories); use its "
            f"train/valid/test files as the split: recgen bench -d {inter.parent} --protocol given"
        )
    user_col = next((c for c in ("user_id", "user", "uid") if c in cols), None)
    item_col = next((c for c in ("item_id", "item", "iid") if c in cols), None)
    if user_col is None or item_col is None:
        raise DataError(f"{inter.name}: needs user_id and item_id fields, found {names}")
    ts = to_float(cols["timestamp"], inter, "timestamp", linenos) if "timestamp" in cols else None
    rating = to_float(cols["rating"], inter, "rating", linenos) if "rating" in cols else None
    item_table = _atomic_side_table(stem.with_suffix(".item"), item_col)
    user_table = _atomic_side_table(stem.with_suffix(".user"), user_col)
    return from_columns(
        cols[user_col],
        cols[item_col],
        ts,
        rating,
        item_table=item_table,
        user_table=user_table,
        name=name or stem.name,
        meta={"format": "recbole", "source": str(inter)},
    )


def _atomic_side_table(path: Path, key: str) -> pa.Table | None:
    if not path.exists():
        return None
    names, types, _, rows = read_atomic(path)
    if key not in names:
        raise DataError(f"{path.name}: has no {key!r} field to join on, found {names}")
    cols = dict(zip(names, transpose(rows), strict=True)) if rows else {n: [] for n in names}
    data: dict[str, Any] = {key: cols.pop(key)}
    renames = {"movie_title": "title", "class": "genres", "release_year": "year"}
    for n, t in zip(names, types, strict=True):
        if n == key:
            continue
        values = cols[n]
        if n == "class" or (t == "token_seq" and n not in ("movie_title", "title")):
            values = [v.split(" ") if v else [] for v in values]
        elif t == "float":
            values = [float(v) if v else None for v in values]
        data[renames.get(n, n)] = values
    return pa.table(data)
