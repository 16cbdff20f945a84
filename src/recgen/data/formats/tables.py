"""Any CSV or Parquet table with a column map (``user``, ``item``, optional ``timestamp``, ``rating``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recgen.data.dataset import Dataset, from_columns
from recgen.data.formats.text import check_exists
from recgen.errors import DataError

COLUMN_ALIASES = {
    "user": ("user", "user_id", "userid", "userId", "reviewerID", "uid", "user_id:token"),
    "item": ("item", "item_id", "itemid", "itemId", "movieId", "movie_id", "asin", "iid", "item_id:token"),
    "timestamp": ("timestamp", "time", "ts", "unixReviewTime", "datetime", "timestamp:float"),
    "rating": ("rating", "ratings", "score", "overall", "stars", "rating:float"),
    "label": ("label", "click", "clicked", "is_click", "label:float"),  # 0/1: only rows labelled 1 are kept
}


def read_csv(path: Path, sep: str, string_columns: tuple[str, ...] = (), encoding: str = "utf-8") -> pa.Table:
    check_exists(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes)")
    read = pacsv.ReadOptions(encoding=encoding) if encoding.lower().replace("-", "") != "utf8" else None
    try:
        table = pacsv.read_csv(
            path,
            read_options=read,
            parse_options=pacsv.ParseOptions(delimiter=sep),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in string_columns}),
        )
    except pa.ArrowInvalid as exc:
        msg = str(exc)
        if "UTF8" in msg or "utf8" in msg.lower():
            raise DataError(
                f"{path.name}: bytes are not valid UTF-8; pass the file's encoding (e.g. --encoding latin-1)"
            ) from None
        if "Empty CSV file" in msg:
            raise DataError(f"{path} is empty: no header and no rows") from None
        raise DataError(
            f"{path.name}: cannot parse as {sep!r}-separated values ({msg.splitlines()[0]}); check --sep"
        ) from None
    if table.num_rows == 0:
        raise DataError(f"{path} has a header but no rows")
    binary = [f.name for f in table.schema if pa.types.is_binary(f.type)]
    if binary:  # pyarrow keeps undecodable text as bytes
        raise DataError(
            f"{path.name}: column(s) {binary} are not valid {encoding.upper()} text; pass the file's encoding "
            f"(e.g. --encoding latin-1)"
        )
    return table


def read_header(path: Path, sep: str, encoding: str = "utf-8") -> list[str]:
    """The column names on the first line of a delimited file (an empty list for an empty file)."""
    import csv

    check_exists(path)
    try:
        with open(path, encoding=encoding, newline="") as f:
            return next(csv.reader(f, delimiter=sep), [])
    except UnicodeDecodeError:
        return []  # read_csv names the encoding problem
    except LookupError:
        raise DataError(
            f"unknown text encoding {encoding!r}; use a Python codec name such as utf-8 or latin-1"
        ) from None


def resolve_columns(table: pa.Table, columns: dict[str, str] | None, path: Path) -> dict[str, str]:
    names = table.column_names
    mapping: dict[str, str] = {}
    columns = dict(columns or {})
    unknown = set(columns) - set(COLUMN_ALIASES)
    if unknown:
        raise DataError(f"column map keys must be among {sorted(COLUMN_ALIASES)}, got {sorted(unknown)}")
    for role, aliases in COLUMN_ALIASES.items():
        if role in columns:
            if columns[role] not in names:
                raise DataError(
                    f"{path.name}: column {columns[role]!r} (for {role}) not found; the file has columns {names}. "
                    f"Fix the column map (e.g. --columns user=userId,item=movieId) or the separator (--sep)"
                )
            mapping[role] = columns[role]
        else:
            found = next((a for a in aliases if a in names), None)
            if found is not None:
                mapping[role] = found
    for role in ("user", "item"):
        if role not in mapping:
            raise DataError(
                f"{path.name}: no {role} column found among {names}; pass a column map such as "
                f"--columns user=USER_COL,item=ITEM_COL (and check the separator with --sep)"
            )
    return mapping


def from_table(
    table: pa.Table,
    columns: dict[str, str] | None,
    path: Path,
    *,
    name: str,
    meta: dict[str, Any],
    item_table: pa.Table | None = None,
) -> Dataset:
    mapping = resolve_columns(table, columns, path)
    if "label" in mapping:  # a click/label file: its 0 rows are shown-not-chosen, not interactions
        labels = table.column(mapping["label"])
        try:
            positive = labels.cast(pa.float64()).to_numpy(zero_copy_only=False) > 0
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(f"{path.name}: label column {mapping['label']!r} must hold 0/1 values") from None
        if not positive.any():
            raise DataError(f"{path.name}: no row has a positive label in column {mapping['label']!r}")
        meta = {**meta, "label_column": mapping["label"], "negative_rows_dropped": int((~positive).sum())}
        table = table.filter(pa.array(positive))

    def strings(col: str) -> pa.ChunkedArray:
        """An id column as Arrow strings (never a Python object per row: files of tens of millions of rows)."""
        arr = table.column(col)
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            arr = arr.cast(pa.string())
        empty = pc.equal(pc.utf8_trim_whitespace(arr), "")
        missing = arr.null_count + int(pc.sum(pc.fill_null(empty, False)).as_py() or 0)
        if missing:
            raise DataError(f"{path.name}: column {col!r} has {missing} missing values; ids must be present")
        return arr

    def numbers(role: str) -> np.ndarray | None:
        if role not in mapping:
            return None
        col = table.column(mapping[role])
        if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
            return col.cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
        try:
            return col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad = next(v for v in col.to_pylist() if not is_number(v))
            raise DataError(f"{path.name}: column {mapping[role]!r} ({role}) must be numeric, found {bad!r}") from None

    item_ids = strings(mapping["item"])
    head = [str(v) for v in item_ids.slice(0, 1000).to_pylist()]
    if sum(1 for v in head if len(v.split()) > 1) > len(head) // 2:
        raise DataError(
            f"{path.name}: column {mapping['item']!r} holds lists of ids (e.g. {head[0]!r:.40}), not one item per "
            "row; a history column belongs to a split file (--protocol given) or a sequences / json-sequences file"
        )
    return from_columns(
        strings(mapping["user"]),
        item_ids,
        numbers("timestamp"),
        numbers("rating"),
        item_table=item_table,
        name=name,
        meta={**meta, "columns": mapping},
    )


def is_number(v: Any) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def load_csv(
    path: str | os.PathLike[str],
    *,
    columns: dict[str, str] | None = None,
    sep: str | None = None,
    encoding: str = "utf-8",
    name: str | None = None,
) -> Dataset:
    """Load any delimited file with a header. ``columns`` maps roles (user, item, timestamp, rating) to names.

    Unmapped roles are guessed from common names (``userId``, ``movieId``, ``asin``, ``timestamp`` ...).
    The separator defaults to tab for ``.tsv``/``.inter`` files and comma otherwise.
    """
    path = Path(path)
    if sep is None:
        sep = "\t" if path.suffix in (".tsv", ".inter", ".tab") else ","
    if sep == "\\t":
        sep = "\t"
    if len(sep) != 1:
        raise DataError(f"separator must be one character, got {sep!r}")
    # ids are read as strings, never through a number: 20-digit ids parsed as floats would merge into one
    header = read_header(path, sep, encoding)
    keep_str = tuple(
        c
        for role in ("user", "item")
        if (c := (columns or {}).get(role) or next((a for a in COLUMN_ALIASES[role] if a in header), None))
    )
    table = read_csv(path, sep, string_columns=keep_str, encoding=encoding)
    return from_table(table, columns, path, name=name or path.stem, meta={"format": "csv", "source": str(path)})


def load_parquet(
    path: str | os.PathLike[str], *, columns: dict[str, str] | None = None, name: str | None = None
) -> Dataset:
    """Load a Parquet table with a column map (see :func:`load_csv`)."""
    path = Path(path)
    check_exists(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path.name}: not a readable Parquet file ({exc}); check the format") from None
    if table.num_rows == 0:
        raise DataError(f"{path} has no rows")
    return from_table(table, columns, path, name=name or path.stem, meta={"format": "parquet", "source": str(path)})
