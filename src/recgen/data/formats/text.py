"""Reading text files the same way for every format: existence checks, decoding, line iteration with line
numbers in errors, field splitting and number parsing, and JSON reading with a one-line error."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from recgen.errors import DataError


def check_exists(path: Path, what: str = "file") -> None:
    if not path.exists():
        raise DataError(f"{what} not found: {path}; check the path (or the data directory)")


def open_text(path: Path, encoding: str = "utf-8") -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding)
    return open(path, encoding=encoding)  # noqa: SIM115


def iter_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Numbered non-empty lines; a decoding failure names the line and suggests an encoding."""
    check_exists(path)
    lineno = 0
    try:
        with open_text(path, encoding) as fh:
            for lineno, line in enumerate(fh, start=1):  # noqa: B007
                line = line.rstrip("\r\n")
                if line.strip():
                    yield lineno, line
    except UnicodeDecodeError as exc:
        raise DataError(
            f"line {lineno + 1} of {path.name}: bytes are not valid {encoding} ({exc.reason}); "
            f"pass the file's encoding (e.g. encoding='latin-1' / --encoding latin-1)"
        ) from None


def split_fields(
    path: Path,
    sep: str,
    n_fields: int | None,
    encoding: str,
    skip_header: bool = False,
    min_fields: int | None = None,
) -> Iterator[tuple[int, list[str]]]:
    sep_name = {"\t": "tab", ",": "comma", "|": "pipe", "::": "'::'", " ": "space"}.get(sep, repr(sep))
    first = True
    for lineno, line in iter_lines(path, encoding):
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


def to_float(values: list[str], path: Path, column: str, linenos: list[int] | None = None) -> np.ndarray:
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


def parse_rows(
    path: Path,
    sep: str,
    n_fields: int,
    encoding: str = "utf-8",
    skip_header: bool = False,
) -> tuple[list[int], list[list[str]]]:
    linenos: list[int] = []
    rows: list[list[str]] = []
    for lineno, fields in split_fields(path, sep, n_fields, encoding, skip_header):
        linenos.append(lineno)
        rows.append(fields)
    if not rows:
        raise DataError(f"{path} is empty: it holds no data rows")
    return linenos, rows


def transpose(rows: list[list[str]]) -> list[list[str]]:
    return [list(c) for c in zip(*rows, strict=True)]


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path.name}: not valid UTF-8 JSON ({exc}); the file may be corrupt") from None
