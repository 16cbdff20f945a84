"""Raw Amazon review JSON lines (optionally gzipped) with optional metadata, k-core filtered."""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from recgen.data.dataset import Dataset, from_columns
from recgen.data.formats.text import iter_lines
from recgen.errors import DataError


def _iter_json_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in iter_lines(path):
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
