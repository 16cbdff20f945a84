"""Any CSV or Parquet table with a column map (``user``, ``item``, optional ``timestamp``, ``rating``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recgen.data.dataset import Dataset, from_encoded
from recgen.data.formats.text import check_exists
from recgen.data.vocabulary import VocabularyBuilder
from recgen.errors import DataError

BLOCK_BYTES = 16 << 20  # CSV read in 16 MB blocks: a large file is never held whole, only its encoded columns

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
    with _csv_errors(path, sep):
        table = pacsv.read_csv(
            path,
            read_options=read,
            parse_options=pacsv.ParseOptions(delimiter=sep),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in string_columns}),
        )
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


def resolve_columns(names: list[str], columns: dict[str, str] | None, path: Path) -> dict[str, str]:
    """Role -> column name: the map given, else the first common name of each role found among ``names``."""
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


class _Batches:
    """Columns gathered batch by batch: ids encoded into growing vocabularies (no Python object per row),
    timestamps and ratings as float arrays, label-0 rows dropped and counted."""

    def __init__(self, path: Path, mapping: dict[str, str]) -> None:
        self.path, self.mapping = path, mapping
        self.users, self.items = VocabularyBuilder(), VocabularyBuilder()
        self.parts: dict[str, list[np.ndarray]] = {"user": [], "item": [], "timestamp": [], "rating": []}
        self.rows = self.negatives = 0

    def add(self, table: pa.Table) -> None:
        path, mapping = self.path, self.mapping
        binary = [f.name for f in table.schema if pa.types.is_binary(f.type)]
        if binary:  # pyarrow keeps undecodable text as bytes
            raise DataError(
                f"{path.name}: column(s) {binary} are not valid UTF-8 text (or not in the --encoding given); pass the "
                "file's encoding (e.g. --encoding latin-1)"
            )
        if "label" in mapping:  # a click/label file: its 0 rows are shown-not-chosen, not interactions
            try:
                positive = table.column(mapping["label"]).cast(pa.float64()).to_numpy(zero_copy_only=False) > 0
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise DataError(f"{path.name}: label column {mapping['label']!r} must hold 0/1 values") from None
            self.negatives += int((~positive).sum())
            table = table.filter(pa.array(positive))
        if self.rows == 0 and table.num_rows:  # the first rows tell a column of id lists from a column of ids
            head = [str(v) for v in table.column(mapping["item"]).slice(0, 1000).to_pylist()]
            if sum(1 for v in head if len(v.split()) > 1) > len(head) // 2:
                raise DataError(
                    f"{path.name}: column {mapping['item']!r} holds lists of ids (e.g. {head[0]!r:.40}), not one item "
                    "per row; a history column belongs to a split file (--protocol given) or a sequences / "
                    "json-sequences file"
                )
        self.parts["user"].append(self.users.encode(self._strings(table, mapping["user"])))
        self.parts["item"].append(self.items.encode(self._strings(table, mapping["item"])))
        for role in ("timestamp", "rating"):
            if role in mapping:
                self.parts[role].append(self._numbers(table, role))
        self.rows += table.num_rows

    def _strings(self, table: pa.Table, col: str) -> pa.ChunkedArray:
        arr = table.column(col)
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            arr = arr.cast(pa.string())
        empty = pc.equal(pc.utf8_trim_whitespace(arr), "")
        missing = arr.null_count + int(pc.sum(pc.fill_null(empty, False)).as_py() or 0)
        if missing:
            raise DataError(f"{self.path.name}: column {col!r} has {missing} missing values; ids must be present")
        return arr

    def _numbers(self, table: pa.Table, role: str) -> np.ndarray:
        col = table.column(self.mapping[role])
        if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
            return col.cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
        try:
            return col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad = next(v for v in col.to_pylist() if not is_number(v))
            raise DataError(
                f"{self.path.name}: column {self.mapping[role]!r} ({role}) must be numeric, found {bad!r}"
            ) from None

    def dataset(self, *, name: str, meta: dict[str, Any], item_table: pa.Table | None = None) -> Dataset:
        if "label" in self.mapping:
            if self.rows == 0:
                raise DataError(f"{self.path.name}: no row has a positive label in column {self.mapping['label']!r}")
            meta = {**meta, "label_column": self.mapping["label"], "negative_rows_dropped": self.negatives}
        cat: dict[str, np.ndarray | None] = {}
        for key, parts in self.parts.items():  # each column joined, then its blocks freed, one at a time
            cat[key] = np.concatenate(parts) if parts else None
            parts.clear()
        return from_encoded(
            self.users.build(), cat["user"], self.items.build(), cat["item"], cat["timestamp"], cat["rating"],
            item_table=item_table, name=name, meta={**meta, "columns": self.mapping},
        )  # fmt: skip


def from_table(
    table: pa.Table,
    columns: dict[str, str] | None,
    path: Path,
    *,
    name: str,
    meta: dict[str, Any],
    item_table: pa.Table | None = None,
) -> Dataset:
    """A Dataset from a whole table with a column map (see ``load_csv``)."""
    batches = _Batches(path, resolve_columns(table.column_names, columns, path))
    batches.add(table)
    return batches.dataset(name=name, meta=meta, item_table=item_table)


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
    mapping = resolve_columns(header, columns, path) if header else {}
    read = pacsv.ReadOptions(encoding=encoding, block_size=BLOCK_BYTES)
    parse = pacsv.ParseOptions(delimiter=sep)
    types = {mapping[r]: pa.string() for r in ("user", "item") if r in mapping}
    with _csv_errors(path, sep):
        check_exists(path)
        if path.stat().st_size == 0:
            raise DataError(f"{path} is empty (0 bytes)")
        # the first block fixes every column's type: numbers become float64 so a later block cannot clash
        first = pacsv.open_csv(path, read_options=read, parse_options=parse,
                               convert_options=pacsv.ConvertOptions(column_types=types))  # fmt: skip
        for f in first.schema:
            if f.name not in types and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)):
                types[f.name] = pa.float64()
        first.close()
        if not mapping:
            mapping = resolve_columns(first.schema.names, columns, path)
        batches = _Batches(path, mapping)
        reader = pacsv.open_csv(path, read_options=read, parse_options=parse,
                                convert_options=pacsv.ConvertOptions(column_types=types))  # fmt: skip
        for batch in reader:
            batches.add(pa.Table.from_batches([batch]))
    if batches.rows == 0 and batches.negatives == 0:
        raise DataError(f"{path} has a header but no rows")
    return batches.dataset(name=name or path.stem, meta={"format": "csv", "source": str(path)})


@contextmanager
def _csv_errors(path: Path, sep: str) -> Iterator[None]:
    """Arrow's CSV errors as one-line DataErrors naming the likely fix."""
    try:
        yield
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


def load_parquet(
    path: str | os.PathLike[str], *, columns: dict[str, str] | None = None, name: str | None = None
) -> Dataset:
    """Load a Parquet table with a column map (see :func:`load_csv`)."""
    path = Path(path)
    check_exists(path)
    try:
        parquet = pq.ParquetFile(path)
        batches = _Batches(path, resolve_columns(parquet.schema_arrow.names, columns, path))
        for batch in parquet.iter_batches(batch_size=1 << 20):  # row groups streamed, never the whole table
            batches.add(pa.Table.from_batches([batch]))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path.name}: not a readable Parquet file ({exc}); check the format") from None
    if batches.rows == 0 and batches.negatives == 0:
        raise DataError(f"{path} has no rows")
    return batches.dataset(name=name or path.stem, meta={"format": "parquet", "source": str(path)})
