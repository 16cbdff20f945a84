"""Loaders for the formats users actually have, and format detection.

Formats (``load_dataset(path, format=...)``):

- ``movielens``: a MovieLens folder or ratings file: ml-100k (``u.data``/``u.item``/``u.user``), ml-1m/ml-10m
  (``ratings.dat``/``movies.dat``/``users.dat``), ml-20m/ml-latest (``ratings.csv``/``movies.csv``).
- ``recbole``: RecBole atomic files (``NAME.inter``/``.item``/``.user``, tab-separated, header ``name:type``).
- ``sequences``: a text file, one user per line, ``user item item ...`` in time order (SASRec/S3-Rec/P5).
- ``s3rec``: a folder with ``s3rec_sequences.txt`` (+ ``s3rec_item2attributes.json``, Yelp's ``letter_items.json``).
- ``amazon-p5``: the Amazon 2014 P5/TIGER folder (``user_sequence.txt``, ``item_short_title.txt``, optional
  ``p5_datamaps.json`` + ``s3rec_item2attributes.json``).
- ``amazon-raw``: raw Amazon review JSON lines (optionally gzipped) + optional metadata, k-core filtered.
- ``csv`` / ``parquet``: any table with a column map (``user``, ``item``, optional ``timestamp``, ``rating``).
- ``recgen``: a folder written by ``Dataset.save``.

Rows are kept in file order; chronological order is always a stable sort by timestamp.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recgen.data.dataset import Dataset, from_columns
from recgen.errors import DataError

FORMATS = (
    "movielens",
    "recbole",
    "sequences",
    "s3rec",
    "amazon-p5",
    "amazon-raw",
    "csv",
    "parquet",
    "recgen",
)

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip

COLUMN_ALIASES = {
    "user": ("user", "user_id", "userid", "userId", "reviewerID", "uid", "user_id:token"),
    "item": ("item", "item_id", "itemid", "itemId", "movieId", "movie_id", "asin", "iid", "item_id:token"),
    "timestamp": ("timestamp", "time", "ts", "unixReviewTime", "datetime", "timestamp:float"),
    "rating": ("rating", "ratings", "score", "overall", "stars", "rating:float"),
}


# ---------------------------------------------------------------------------------------------- helpers
def _check_exists(path: Path, what: str = "file") -> None:
    if not path.exists():
        raise DataError(f"{what} not found: {path}; check the path (or the data directory)")


def _open_text(path: Path, encoding: str = "utf-8") -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding)
    return open(path, encoding=encoding)  # noqa: SIM115


def _iter_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Numbered non-empty lines; a decoding failure names the line and suggests an encoding."""
    _check_exists(path)
    lineno = 0
    try:
        with _open_text(path, encoding) as fh:
            for lineno, line in enumerate(fh, start=1):  # noqa: B007
                line = line.rstrip("\r\n")
                if line.strip():
                    yield lineno, line
    except UnicodeDecodeError as exc:
        raise DataError(
            f"line {lineno + 1} of {path.name}: bytes are not valid {encoding} ({exc.reason}); "
            f"pass the file's encoding (e.g. encoding='latin-1' / --encoding latin-1)"
        ) from None


def _split_fields(
    path: Path,
    sep: str,
    n_fields: int | None,
    encoding: str,
    skip_header: bool = False,
    min_fields: int | None = None,
) -> Iterator[tuple[int, list[str]]]:
    sep_name = {"\t": "tab", ",": "comma", "|": "pipe", "::": "'::'", " ": "space"}.get(sep, repr(sep))
    first = True
    for lineno, line in _iter_lines(path, encoding):
        if first and skip_header:
            first = False
            continue
        first = False
        fields = line.split(sep)
        if n_fields is not None and len(fields) != n_fields:
            raise DataError(
                f"line {lineno} of {path.name}: expected {n_fields} {sep_name}-separated fields, got {len(fields)}; "
                f"check the separator and the format"
            )
        if min_fields is not None and len(fields) < min_fields:
            raise DataError(
                f"line {lineno} of {path.name}: expected at least {min_fields} {sep_name}-separated fields, "
                f"got {len(fields)}; check the separator and the format"
            )
        yield lineno, fields


def _to_float(values: list[str], path: Path, column: str, linenos: list[int] | None = None) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except ValueError:
        for pos, v in enumerate(values):
            try:
                float(v)
            except ValueError:
                where = f"line {linenos[pos]}" if linenos else f"row {pos + 1}"
                raise DataError(
                    f"{where} of {path.name}: {column} must be a number, got {v!r}; check the column order/map"
                ) from None
        raise


def _parse_rows(
    path: Path,
    sep: str,
    n_fields: int,
    encoding: str = "utf-8",
    skip_header: bool = False,
) -> tuple[list[int], list[list[str]]]:
    linenos: list[int] = []
    rows: list[list[str]] = []
    for lineno, fields in _split_fields(path, sep, n_fields, encoding, skip_header):
        linenos.append(lineno)
        rows.append(fields)
    if not rows:
        raise DataError(f"{path} is empty: it holds no data rows")
    return linenos, rows


def _columns(rows: list[list[str]]) -> list[list[str]]:
    return [list(c) for c in zip(*rows, strict=True)]


# ------------------------------------------------------------------------------------------- MovieLens
def load_movielens(path: str | os.PathLike[str], *, name: str | None = None) -> Dataset:
    """Load MovieLens raw files: ml-100k, ml-1m/ml-10m (``::``) or ml-20m/ml-latest (CSV)."""
    path = Path(path)
    _check_exists(path, "MovieLens path")
    folder = path if path.is_dir() else path.parent
    if (folder / "u.data").exists():
        return _load_ml100k(folder, name or folder.name)
    if (folder / "ratings.dat").exists():
        return _load_ml_dat(folder, name or folder.name)
    if (folder / "ratings.csv").exists():
        return _load_ml_csv(folder, name or folder.name)
    raise DataError(
        f"{path} holds no MovieLens ratings file (u.data, ratings.dat or ratings.csv); "
        f"point to the unzipped MovieLens folder"
    )


def _load_ml100k(folder: Path, name: str) -> Dataset:
    linenos, rows = _parse_rows(folder / "u.data", "\t", 4)
    u, i, r, t = _columns(rows)
    ratings = _to_float(r, folder / "u.data", "rating", linenos)
    ts = _to_float(t, folder / "u.data", "timestamp", linenos)
    item_table = user_table = None
    if (folder / "u.item").exists():
        ids, titles, years, genres = [], [], [], []
        for _, f in _split_fields(folder / "u.item", "|", 24, "latin-1"):
            ids.append(f[0])
            title = f[1]
            year = title[-5:-1] if title.endswith(")") and title[-6:-5] == "(" else (f[2][-4:] if f[2] else "")
            titles.append(title[:-7].strip() if title.endswith(")") and title[-6:-5] == "(" else title)
            years.append(year)
            genres.append([g for g, flag in zip(ML100K_GENRES, f[5:], strict=True) if flag == "1"])
        item_table = pa.table({"item_id": ids, "title": titles, "year": years, "genres": genres})
    if (folder / "u.user").exists():
        cols = _columns(_parse_rows(folder / "u.user", "|", 5)[1])
        user_table = pa.table(dict(zip(["user_id", "age", "gender", "occupation", "zip_code"], cols, strict=True)))
    return from_columns(
        u,
        i,
        ts,
        ratings,
        item_table=item_table,
        user_table=user_table,
        name=name,
        meta={"format": "movielens", "source": str(folder)},
    )


def _load_ml_dat(folder: Path, name: str) -> Dataset:
    linenos, rows = _parse_rows(folder / "ratings.dat", "::", 4, encoding="latin-1")
    u, i, r, t = _columns(rows)
    item_table = user_table = None
    if (folder / "movies.dat").exists():
        ids, titles, genres = [], [], []
        for _, f in _split_fields(folder / "movies.dat", "::", 3, "latin-1"):
            ids.append(f[0])
            titles.append(f[1])
            genres.append(f[2].split("|"))
        item_table = pa.table({"item_id": ids, "title": titles, "genres": genres})
    if (folder / "users.dat").exists():
        cols = _columns(_parse_rows(folder / "users.dat", "::", 5, encoding="latin-1")[1])
        user_table = pa.table(dict(zip(["user_id", "gender", "age", "occupation", "zip_code"], cols, strict=True)))
    return from_columns(
        u,
        i,
        _to_float(t, folder / "ratings.dat", "timestamp", linenos),
        _to_float(r, folder / "ratings.dat", "rating", linenos),
        item_table=item_table,
        user_table=user_table,
        name=name,
        meta={"format": "movielens", "source": str(folder)},
    )


def _load_ml_csv(folder: Path, name: str) -> Dataset:
    items = None
    if (folder / "movies.csv").exists():
        movies = _read_csv(folder / "movies.csv", ",", string_columns=("movieId", "title", "genres"))
        genres = [g.split("|") for g in movies.column("genres").to_pylist()]
        items = pa.table({"item_id": movies.column("movieId"), "title": movies.column("title"), "genres": genres})
    return _from_table(
        _read_csv(folder / "ratings.csv", ","),
        {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"},
        folder / "ratings.csv",
        name=name,
        meta={"format": "movielens", "source": str(folder)},
        item_table=items,
    )


# --------------------------------------------------------------------------------------------- RecBole
_RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")


def _read_atomic(path: Path) -> tuple[list[str], list[str], list[int], list[list[str]]]:
    lines = _iter_lines(path)
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
    _check_exists(path, "RecBole path")
    if path.is_dir():
        inters = sorted(path.glob("*.inter"))
        if len(inters) != 1:
            raise DataError(f"{path} holds {len(inters)} .inter files, expected exactly 1; pass the .inter file")
        inter = inters[0]
    else:
        inter = path
    stem = inter.with_suffix("")
    names, types, linenos, rows = _read_atomic(inter)
    if not rows:
        raise DataError(f"{inter} has a header but no interactions")
    cols = dict(zip(names, _columns(rows), strict=True))
    user_col = next((c for c in ("user_id", "user", "uid") if c in cols), None)
    item_col = next((c for c in ("item_id", "item", "iid") if c in cols), None)
    if user_col is None or item_col is None:
        raise DataError(f"{inter.name}: needs user_id and item_id fields, found {names}")
    ts = _to_float(cols["timestamp"], inter, "timestamp", linenos) if "timestamp" in cols else None
    rating = _to_float(cols["rating"], inter, "rating", linenos) if "rating" in cols else None
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
    names, types, _, rows = _read_atomic(path)
    if key not in names:
        raise DataError(f"{path.name}: has no {key!r} field to join on, found {names}")
    cols = dict(zip(names, _columns(rows), strict=True)) if rows else {n: [] for n in names}
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


# ------------------------------------------------------------------------------------------- sequences
def load_sequences(path: str | os.PathLike[str], *, name: str | None = None, sep: str | None = None) -> Dataset:
    """Load a text file with one user per line: ``user item item ...`` in time order.

    Timestamps are the positions within each line (recorded as ``timestamp_source = "position"``).
    """
    path = Path(path)
    _check_exists(path)
    users: list[str] = []
    items: list[str] = []
    for lineno, line in _iter_lines(path):
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


def load_s3rec(path: str | os.PathLike[str], *, name: str | None = None) -> Dataset:
    """Load an S3-Rec data folder: ``s3rec_sequences.txt`` + ``s3rec_item2attributes.json`` (+ Yelp titles)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    seq = folder / "s3rec_sequences.txt" if path.is_dir() else path
    ds = load_sequences(seq, name=name or folder.name)
    fields: dict[str, list[Any]] = {"item_id": ds.items.ids}
    letter = folder / "letter_items.json"
    if letter.exists():  # Yelp (LETTER): key k describes S3-Rec item k+1
        meta = _read_json(letter)
        fields["title"] = [meta.get(str(int(i) - 1), {}).get("title") for i in ds.items.ids]
        fields["categories"] = [
            [c.strip() for c in (meta.get(str(int(i) - 1), {}).get("description") or "").split(",") if c.strip()]
            for i in ds.items.ids
        ]
    attrs = folder / "s3rec_item2attributes.json"
    if attrs.exists():
        amap = _read_json(attrs)
        fields["attributes"] = [amap.get(i, []) for i in ds.items.ids]
    if len(fields) > 1:
        ds.item_table = pa.table(fields)
    ds.meta.update(format="s3rec", source=str(folder))
    return ds


# --------------------------------------------------------------------------------------------- Amazon
def load_amazon_p5(path: str | os.PathLike[str], *, name: str | None = None) -> Dataset:
    """Load an Amazon 2014 P5/TIGER folder: ASIN sequences, short titles and S3-Rec attributes (if present)."""
    folder = Path(path)
    _check_exists(folder / "user_sequence.txt")
    ds = load_sequences(folder / "user_sequence.txt", name=name or folder.name)
    fields: dict[str, list[Any]] = {"item_id": ds.items.ids}
    titles_file = folder / "item_short_title.txt"
    if titles_file.exists():
        titles: dict[str, str] = {}
        for _, line in _iter_lines(titles_file):
            asin, _, title = line.partition(" ")
            titles[asin] = title
        fields["title"] = [titles.get(a) for a in ds.items.ids]
    maps, attrs = folder / "p5_datamaps.json", folder / "s3rec_item2attributes.json"
    if maps.exists() and attrs.exists():
        asin2id = {asin: pid for pid, asin in _read_json(maps)["id2item"].items()}
        amap = _read_json(attrs)
        fields["attributes"] = [amap.get(asin2id.get(a, ""), []) for a in ds.items.ids]
    if len(fields) > 1:
        ds.item_table = pa.table(fields)
    ds.meta.update(format="amazon-p5", source=str(folder))
    return ds


def _iter_json_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in _iter_lines(path):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            try:  # the 2014 metadata files are Python dict literals
                rec = ast.literal_eval(line)
            except (ValueError, SyntaxError):
                raise DataError(
                    f"line {lineno} of {path.name}: not a JSON object; expected one review per line"
                ) from None
        if not isinstance(rec, dict):
            raise DataError(f"line {lineno} of {path.name}: expected a JSON object, got {type(rec).__name__}")
        yield lineno, rec


def load_amazon_raw(
    reviews: str | os.PathLike[str],
    *,
    meta: str | os.PathLike[str] | None = None,
    k_core: int = 5,
    name: str | None = None,
) -> Dataset:
    """Load raw Amazon review JSON lines (2014 or 2018 dumps, optionally gzipped), then k-core filter.

    Args:
        reviews: reviews file; each line has ``reviewerID``, ``asin``, ``overall``, ``unixReviewTime``.
        meta: optional metadata file (``asin``, ``title``, ``categories``/``category``, ``brand``).
        k_core: minimum interactions per user and per item (iterated to a fixed point); 0 disables.
    """
    reviews = Path(reviews)
    users, items, ts, ratings = [], [], [], []
    for lineno, rec in _iter_json_records(reviews):
        try:
            users.append(rec["reviewerID"])
            items.append(rec["asin"])
            ts.append(float(rec.get("unixReviewTime", lineno)))
            ratings.append(float(rec.get("overall", 1.0)))
        except KeyError as exc:
            raise DataError(
                f"line {lineno} of {reviews.name}: missing field {exc.args[0]!r} (need reviewerID and asin)"
            ) from None
    if not users:
        raise DataError(f"{reviews} is empty: no reviews")
    item_table = None
    if meta is not None:
        ids, titles, cats, brands = [], [], [], []
        for _, rec in _iter_json_records(Path(meta)):
            if "asin" not in rec:
                continue
            ids.append(rec["asin"])
            titles.append(rec.get("title"))
            c = rec.get("categories", rec.get("category", []))
            flat = [x for sub in c for x in (sub if isinstance(sub, list) else [sub])] if c else []
            cats.append([str(x) for x in flat])
            brands.append(rec.get("brand"))
        item_table = pa.table({"item_id": ids, "title": titles, "categories": cats, "brand": brands})
    ds = from_columns(
        users,
        items,
        ts,
        ratings,
        item_table=item_table,
        name=name or reviews.name.split(".")[0],
        meta={"format": "amazon-raw", "source": str(reviews)},
    )
    if k_core:
        from recgen.data.filters import k_core as kcore

        ds = kcore(ds, min_user=k_core, min_item=k_core)
    return ds


# ------------------------------------------------------------------------------------- CSV / Parquet
def _read_csv(path: Path, sep: str, string_columns: tuple[str, ...] = (), encoding: str = "utf-8") -> pa.Table:
    _check_exists(path)
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


def _resolve_columns(table: pa.Table, columns: dict[str, str] | None, path: Path) -> dict[str, str]:
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


def _from_table(
    table: pa.Table,
    columns: dict[str, str] | None,
    path: Path,
    *,
    name: str,
    meta: dict[str, Any],
    item_table: pa.Table | None = None,
) -> Dataset:
    mapping = _resolve_columns(table, columns, path)

    def strings(col: str) -> list[str]:
        arr = table.column(col)
        if arr.null_count:
            raise DataError(f"{path.name}: column {col!r} has {arr.null_count} missing values; ids must be present")
        return [str(x) for x in arr.to_pylist()]

    def numbers(role: str) -> np.ndarray | None:
        if role not in mapping:
            return None
        col = table.column(mapping[role])
        if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
            return col.cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
        try:
            return col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad = next(v for v in col.to_pylist() if not _is_number(v))
            raise DataError(f"{path.name}: column {mapping[role]!r} ({role}) must be numeric, found {bad!r}") from None

    return from_columns(
        strings(mapping["user"]),
        strings(mapping["item"]),
        numbers("timestamp"),
        numbers("rating"),
        item_table=item_table,
        name=name,
        meta={**meta, "columns": mapping},
    )


def _is_number(v: Any) -> bool:
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
    keep_str = tuple(v for k, v in (columns or {}).items() if k in ("user", "item"))
    table = _read_csv(path, sep, string_columns=keep_str, encoding=encoding)
    # ids stay strings even when they look numeric
    for role in ("user", "item"):
        col = (columns or {}).get(role) or next((a for a in COLUMN_ALIASES[role] if a in table.column_names), None)
        if col in table.column_names and not pa.types.is_string(table.schema.field(col).type):
            table = table.set_column(table.column_names.index(col), col, table.column(col).cast(pa.string()))
    return _from_table(table, columns, path, name=name or path.stem, meta={"format": "csv", "source": str(path)})


def load_parquet(
    path: str | os.PathLike[str], *, columns: dict[str, str] | None = None, name: str | None = None
) -> Dataset:
    """Load a Parquet table with a column map (see :func:`load_csv`)."""
    path = Path(path)
    _check_exists(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path.name}: not a readable Parquet file ({exc}); check the format") from None
    if table.num_rows == 0:
        raise DataError(f"{path} has no rows")
    return _from_table(table, columns, path, name=name or path.stem, meta={"format": "parquet", "source": str(path)})


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path.name}: not valid UTF-8 JSON ({exc}); the file may be corrupt") from None


# ------------------------------------------------------------------------------------------- dispatch
def detect_format(path: str | os.PathLike[str]) -> str:
    """Recognise a dataset format from a path where that is unambiguous; otherwise raise DataError."""
    path = Path(path)
    _check_exists(path, "dataset path")
    if path.is_dir():
        checks: list[tuple[str, Callable[[Path], bool]]] = [
            ("recgen", lambda p: (p / "schema.json").exists()),
            ("movielens", lambda p: any((p / f).exists() for f in ("u.data", "ratings.dat", "ratings.csv"))),
            ("amazon-p5", lambda p: (p / "user_sequence.txt").exists()),
            ("s3rec", lambda p: (p / "s3rec_sequences.txt").exists()),
            ("recbole", lambda p: any(p.glob("*.inter"))),
        ]
        for fmt, check in checks:
            if check(path):
                return fmt
        raise DataError(f"cannot tell the format of folder {path}; pass --format (one of {', '.join(FORMATS)})")
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.name in ("u.data", "ratings.dat"):
        return "movielens"
    if path.suffix == ".inter":
        return "recbole"
    if path.suffix == ".parquet":
        return "parquet"
    if path.suffix in (".csv", ".tsv"):
        return "csv"
    if path.suffix == ".txt":
        return "sequences"
    if suffixes.endswith((".json", ".jsonl", ".json.gz", ".jsonl.gz")):
        return "amazon-raw"
    raise DataError(f"cannot tell the format of {path.name}; pass --format (one of {', '.join(FORMATS)})")


def load_path(path: str | os.PathLike[str], format: str | None = None, **options: Any) -> Dataset:
    """Load a dataset from a path in a given (or detected) format. Options go to the format's loader."""
    fmt = format or detect_format(path)
    loaders: dict[str, Callable[..., Dataset]] = {
        "movielens": load_movielens,
        "recbole": load_recbole,
        "sequences": load_sequences,
        "s3rec": load_s3rec,
        "amazon-p5": load_amazon_p5,
        "amazon-raw": load_amazon_raw,
        "csv": load_csv,
        "parquet": load_parquet,
        "recgen": lambda p, **kw: Dataset.load(p),
    }
    if fmt not in loaders:
        raise DataError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    _check_exists(Path(path), "dataset path")
    accepted = {
        "csv": {"columns", "sep", "encoding", "name"},
        "parquet": {"columns", "name"},
        "sequences": {"sep", "name"},
        "amazon-raw": {"meta", "k_core", "name"},
    }.get(fmt, {"name"})
    extra = {k for k, v in options.items() if v is not None} - accepted
    if extra:
        raise DataError(f"format {fmt!r} does not take option(s) {sorted(extra)}; it takes {sorted(accepted)}")
    return loaders[fmt](path, **{k: v for k, v in options.items() if v is not None})


def load_dataset(
    name_or_path: str | os.PathLike[str],
    *,
    format: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Dataset:
    """Load a named dataset (``ml-100k``, ``beauty`` ...) from the data directory, or any path.

    Args:
        name_or_path: a registered dataset name (see ``recgen.data.registry.DATASETS``) or a file/folder path.
        format: the format of a path (detected when omitted).
        data_dir: where named datasets are looked up (else ``RECGEN_DATA_DIR``, then the default cache).
        options: format options (``columns``, ``sep``, ``encoding`` ...).

    Raises:
        DataError: unknown name, missing files or malformed content, with the fix in the message.
    """
    from recgen.data.registry import DATASETS, resolve

    key = str(name_or_path)
    if key in DATASETS and not Path(key).exists():
        spec = DATASETS[key]
        folder = resolve(key, data_dir)
        return load_path(folder, spec.format, name=key)
    if not Path(key).exists():
        if os.sep not in key and "." not in key:
            raise DataError(f"unknown dataset {key!r}: not a path and not one of {', '.join(DATASETS)}")
        raise DataError(f"dataset path not found: {key}; check the path")
    return load_path(key, format, **options)
