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
- ``json-sequences``: JSON mapping each user to a time-ordered item list (LETTER/P5 style), or user records.
- ``csv`` / ``parquet``: any table with a column map (``user``, ``item``, optional ``timestamp``, ``rating``).
- ``recgen``: a folder written by ``Dataset.save``.

Rows are kept in file order; chronological order is always a stable sort by timestamp.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recgen.data.dataset import Dataset
from recgen.data.formats.amazon import load_amazon_raw
from recgen.data.formats.movielens import load_movielens
from recgen.data.formats.recbole import load_recbole
from recgen.data.formats.sequences import (
    load_amazon_p5,
    load_json_sequences,
    load_s3rec,
    load_sequences,
    looks_like_json_sequences,
)
from recgen.data.formats.tables import load_csv, load_parquet
from recgen.data.formats.text import check_exists
from recgen.errors import DataError

FORMATS = (
    "movielens",
    "recbole",
    "sequences",
    "s3rec",
    "amazon-p5",
    "amazon-raw",
    "json-sequences",
    "csv",
    "parquet",
    "recgen",
)


FILE_FORMATS = ("csv", "parquet", "sequences", "amazon-raw", "json-sequences")
_MAGIC = {
    b"PK\x03\x04": "zip",
    b"\x80\x02": "pickle",
    b"\x80\x03": "pickle",
    b"\x80\x04": "pickle",
    b"\x80\x05": "pickle",
}


def refuse_unsafe(path: Path) -> None:
    """Refuse pickles on purpose (loading one runs the code it holds) and zip archives (unpack them first)."""
    if path.is_dir():
        return
    with open(path, "rb") as f:
        head = f.read(4)
    kind = next((k for magic, k in _MAGIC.items() if head.startswith(magic)), None)
    if kind is None and path.suffix.lower() in (".pkl", ".pickle"):
        kind = "pickle"
    if kind == "pickle":
        raise DataError(
            f"{path.name} is a Python pickle; recgen does not load pickles, because loading one runs code it contains. "
            "Export the data as CSV or Parquet (e.g. pandas: df.to_parquet('data.parquet')) and load that"
        )
    if kind == "zip":
        raise DataError(
            f"{path.name} is a zip archive; unpack it first (unzip {path.name}) and give the folder or file"
        )


def detect_format(path: str | os.PathLike[str]) -> str:
    """Recognise a dataset format from a path where that is unambiguous; otherwise raise DataError."""
    path = Path(path)
    check_exists(path, "dataset path")
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
    if suffixes.endswith((".json", ".jsonl")) and looks_like_json_sequences(path):
        return "json-sequences"
    if suffixes.endswith((".json", ".jsonl", ".json.gz", ".jsonl.gz")):
        return "amazon-raw"
    raise DataError(f"cannot tell the format of {path.name}; pass --format (one of {', '.join(FORMATS)})")


def load_path(path: str | os.PathLike[str], format: str | None = None, **options: Any) -> Dataset:
    """Load a dataset from a path in a given (or detected) format. Options go to the format's loader."""
    check_exists(Path(path), "dataset path")
    refuse_unsafe(Path(path))
    fmt = format or detect_format(path)
    loaders: dict[str, Callable[..., Dataset]] = {
        "movielens": load_movielens,
        "recbole": load_recbole,
        "sequences": load_sequences,
        "s3rec": load_s3rec,
        "amazon-p5": load_amazon_p5,
        "amazon-raw": load_amazon_raw,
        "json-sequences": load_json_sequences,
        "csv": load_csv,
        "parquet": load_parquet,
        "recgen": lambda p, **kw: Dataset.load(p),
    }
    if fmt not in loaders:
        raise DataError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt in FILE_FORMATS and Path(path).is_dir():
        raise DataError(f"--format {fmt} reads a file, but {path} is a folder; give the file inside it")
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
    min_rating: float | None = None,
    **options: Any,
) -> Dataset:
    """Load a named dataset (``ml-100k``, ``beauty`` ...) from the data directory, or any path.

    Args:
        name_or_path: a registered dataset name (see ``recgen.data.registry.DATASETS``) or a file/folder path.
        format: the format of a path (detected when omitted).
        data_dir: where named datasets are looked up (else ``RECGEN_DATA_DIR``, then the default cache).
        min_rating: keep only interactions rated at least this (the data must have ratings).
        options: format options (``columns``, ``sep``, ``encoding`` ...).

    Raises:
        DataError: unknown name, missing files or malformed content, with the fix in the message.
    """
    from recgen.data.registry import DATASETS, resolve

    key = str(name_or_path)
    if key in DATASETS and not Path(key).exists():
        given = sorted(k for k, v in {"format": format, **options}.items() if v is not None)
        if given:
            raise DataError(f"{key} is a named dataset with a known format; {given} apply to a path, not a name")
        spec = DATASETS[key]
        ds = load_path(resolve(key, data_dir), spec.format, name=key)
    elif not Path(key).exists():
        if os.sep not in key and "." not in key:
            raise DataError(f"unknown dataset {key!r}: not a path and not one of {', '.join(DATASETS)}")
        raise DataError(f"dataset path not found: {key}; check the path")
    else:
        ds = load_path(key, format, **options)
    if min_rating is not None:
        from recgen.data.filters import rating_threshold

        ds = rating_threshold(ds, min_rating)
    return ds
