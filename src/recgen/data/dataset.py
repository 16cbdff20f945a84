"""The data contract: ``Vocabulary`` (external id <-> dense int) and ``Dataset`` (interactions + side tables).

Interactions are kept columnar as numpy arrays **in source order**: the row order of the file is part of the
data, because chronological order is a *stable* sort by timestamp (equal timestamps keep the file's order).
Dense ids start at 1; 0 is reserved for padding. Side tables (items, users) are pyarrow Tables whose first
column holds the external id. A dataset saves natively as Parquet files plus ``schema.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recgen.data.vocabulary import Vocabulary
from recgen.errors import DataError, IntegrityError
from recgen.io import atomic_dir, read_json_file, read_parquet, verify_manifest

SCHEMA_VERSION = 1


@dataclass
class Dataset:
    """User-item interactions plus optional item and user tables.

    Attributes:
        user_ids: dense user id per interaction, shape (N,), int64, values in 1..n_users.
        item_ids: dense item id per interaction, shape (N,), int64.
        timestamps: shape (N,), float64. Where the source has no time, the position within the user's
            sequence (``timestamp_source == "position"``).
        ratings: shape (N,), float32, or None.
        users, items: the vocabularies.
        item_table, user_table: pyarrow Tables whose first column is the external id (or None).
        name: a short name used in results (e.g. ``ml-100k``).
        meta: free-form provenance (source files, format, timestamp source, filters applied).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    timestamps: np.ndarray
    users: Vocabulary
    items: Vocabulary
    ratings: np.ndarray | None = None
    item_table: pa.Table | None = None
    user_table: pa.Table | None = None
    name: str = "dataset"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.user_ids = np.ascontiguousarray(self.user_ids, dtype=np.int64)
        self.item_ids = np.ascontiguousarray(self.item_ids, dtype=np.int64)
        self.timestamps = np.ascontiguousarray(self.timestamps, dtype=np.float64)
        if self.ratings is not None:
            self.ratings = np.ascontiguousarray(self.ratings, dtype=np.float32)
        n = len(self.user_ids)
        lengths = {"item_ids": len(self.item_ids), "timestamps": len(self.timestamps)}
        if self.ratings is not None:
            lengths["ratings"] = len(self.ratings)
        for col, length in lengths.items():
            if length != n:
                raise DataError(f"column {col} has {length} rows but user_ids has {n}; columns must align")
        if n:
            if self.user_ids.min() < 1 or self.user_ids.max() > len(self.users):
                raise DataError("user_ids must be dense ids in 1..len(users)")
            if self.item_ids.min() < 1 or self.item_ids.max() > len(self.items):
                raise DataError("item_ids must be dense ids in 1..len(items)")

    # ----------------------------------------------------------------------------------------- sizes
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_interactions(self) -> int:
        return len(self.user_ids)

    def __len__(self) -> int:
        return self.n_interactions

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, users={self.n_users}, items={self.n_items}, "
            f"interactions={self.n_interactions}, ratings={self.ratings is not None})"
        )

    # ------------------------------------------------------------------------------------ derived views
    def chronological_order(self) -> np.ndarray:
        """Row order grouped by user, each user's rows in a stable sort by timestamp.

        Equal timestamps keep the source file's order (numpy's stable lexsort); this is the rule every
        split and every sequence in recgen uses.
        """
        return np.lexsort((self.timestamps, self.user_ids))  # last key is primary; lexsort is stable

    def user_timelines(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`user_sequences`, with the timestamps aligned to the items (one sort for both)."""
        order = self.chronological_order()
        counts = np.bincount(self.user_ids, minlength=self.users.size)
        indptr = np.zeros(self.users.size + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return indptr, self.item_ids[order], self.timestamps[order]

    def user_sequences(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR view of the chronological item sequence of every user.

        Returns:
            (indptr, items): ``items[indptr[u]:indptr[u+1]]`` is user ``u``'s sequence; ``indptr`` has
            ``n_users + 2`` entries so that dense ids index it directly (row 0 = padding, empty).
        """
        indptr, items, _ = self.user_timelines()
        return indptr, items

    def item_counts(self) -> np.ndarray:
        """Interactions per item, indexed by dense id (entry 0 = padding = 0)."""
        return np.bincount(self.item_ids, minlength=self.items.size).astype(np.int64)

    def subset(self, rows: np.ndarray, *, name: str | None = None, meta: dict[str, Any] | None = None) -> Dataset:
        """The dataset restricted to some interaction rows (boolean mask or indices), same vocabularies."""
        rows = np.asarray(rows)
        return Dataset(
            user_ids=self.user_ids[rows],
            item_ids=self.item_ids[rows],
            timestamps=self.timestamps[rows],
            ratings=None if self.ratings is None else self.ratings[rows],
            users=self.users,
            items=self.items,
            item_table=self.item_table,
            user_table=self.user_table,
            name=name or self.name,
            meta={**self.meta, **(meta or {})},
        )

    def compact(self) -> Dataset:
        """Re-index users and items so that only those with interactions remain (after filtering).

        Dense ids keep their relative order. Side tables are restricted to the kept ids.
        """
        keep_u = np.unique(self.user_ids)
        keep_i = np.unique(self.item_ids)
        umap = np.zeros(self.users.size, dtype=np.int64)
        umap[keep_u] = np.arange(1, len(keep_u) + 1)
        imap = np.zeros(self.items.size, dtype=np.int64)
        imap[keep_i] = np.arange(1, len(keep_i) + 1)
        users = Vocabulary(self.users.external(keep_u)) if len(keep_u) else Vocabulary()
        items = Vocabulary(self.items.external(keep_i)) if len(keep_i) else Vocabulary()
        return Dataset(
            user_ids=umap[self.user_ids],
            item_ids=imap[self.item_ids],
            timestamps=self.timestamps,
            ratings=self.ratings,
            users=users,
            items=items,
            item_table=_restrict_table(self.item_table, items),
            user_table=_restrict_table(self.user_table, users),
            name=self.name,
            meta=dict(self.meta),
        )

    def fingerprint(self) -> str:
        """A short content hash of the interactions and vocabularies (recorded in checkpoints and results)."""
        h = hashlib.sha256()
        for arr in (self.user_ids, self.item_ids, self.timestamps):
            h.update(np.ascontiguousarray(arr).tobytes())
        if self.ratings is not None:
            h.update(self.ratings.tobytes())
        h.update("\x1f".join(self.users.ids).encode())
        h.update("\x1e".join(self.items.ids).encode())
        return h.hexdigest()[:16]

    def stats(self) -> dict[str, Any]:
        """Counts and sequence-length statistics (what ``recgen data info`` prints)."""
        lengths = np.bincount(self.user_ids, minlength=self.users.size)[1:]
        item_counts = self.item_counts()[1:]
        n_cells = max(self.n_users * self.n_items, 1)
        out: dict[str, Any] = {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "density": self.n_interactions / n_cells,
            "seq_len_min": int(lengths.min()) if len(lengths) else 0,
            "seq_len_max": int(lengths.max()) if len(lengths) else 0,
            "seq_len_mean": float(lengths.mean()) if len(lengths) else 0.0,
            "seq_len_median": float(np.median(lengths)) if len(lengths) else 0.0,
            "item_freq_min": int(item_counts.min()) if len(item_counts) else 0,
            "item_freq_max": int(item_counts.max()) if len(item_counts) else 0,
            "has_ratings": self.ratings is not None,
            "timestamp_source": self.meta.get("timestamp_source", "unknown"),
            "item_fields": [] if self.item_table is None else self.item_table.column_names[1:],
            "user_fields": [] if self.user_table is None else self.user_table.column_names[1:],
        }
        pairs = self.user_ids * (self.items.size) + self.item_ids
        pairs.sort()  # in place: one array of the data's length, not np.unique's copies
        out["duplicate_pairs"] = int(np.count_nonzero(pairs[1:] == pairs[:-1]))
        return out

    # ------------------------------------------------------------------------------- native save/load
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the dataset as Parquet files + ``schema.json`` into a folder, atomically.

        The folder is written under a temporary name next to ``path`` and renamed into place, so a crash
        never leaves a half-written dataset.
        """
        path = Path(path)
        rebuild = f"rebuild it with `recgen data convert SOURCE {path}`"
        with atomic_dir(path, manifest=("dataset", rebuild)) as tmp:
            cols: dict[str, Any] = {
                "user": pa.array(self.user_ids),
                "item": pa.array(self.item_ids),
                "timestamp": pa.array(self.timestamps),
            }
            if self.ratings is not None:
                cols["rating"] = pa.array(self.ratings)
            pq.write_table(pa.table(cols), tmp / "interactions.parquet")
            pq.write_table(self.users.to_arrow(), tmp / "users_vocab.parquet")
            pq.write_table(self.items.to_arrow(), tmp / "items_vocab.parquet")
            if self.item_table is not None:
                pq.write_table(self.item_table, tmp / "items.parquet")
            if self.user_table is not None:
                pq.write_table(self.user_table, tmp / "users.parquet")
            schema = {
                "format": "recgen-dataset",
                "schema_version": SCHEMA_VERSION,
                "name": self.name,
                "n_users": self.n_users,
                "n_items": self.n_items,
                "n_interactions": self.n_interactions,
                "has_ratings": self.ratings is not None,
                "item_fields": [] if self.item_table is None else self.item_table.column_names,
                "user_fields": [] if self.user_table is None else self.user_table.column_names,
                "fingerprint": self.fingerprint(),
                "meta": self.meta,
            }
            (tmp / "schema.json").write_text(json.dumps(schema, indent=2, default=str))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Dataset:
        """Read a folder written by :meth:`save`, checked against its manifest and fingerprint.

        Raises:
            DataError: not a dataset folder; IntegrityError: a member corrupt, truncated, missing or changed.
        """
        path = Path(path)
        rebuild = f"rebuild it with `recgen data convert SOURCE {path}`"
        schema_file = path / "schema.json"
        if not schema_file.is_file():
            raise DataError(f"{path} is not a recgen dataset folder (no schema.json); write one with Dataset.save")
        verify_manifest(path, "dataset", rebuild)
        schema = read_json_file(schema_file, f"the dataset is corrupt: {rebuild}")
        if schema.get("format") != "recgen-dataset":
            raise DataError(f"{schema_file}: format is {schema.get('format')!r}, expected 'recgen-dataset'")

        def table(name: str, optional: bool = False) -> pa.Table | None:
            if optional and not (path / name).exists():
                return None
            return read_parquet(path / name, f"the dataset is corrupt: {rebuild}")

        inter = table("interactions.parquet")
        try:
            ds = cls(
                user_ids=inter.column("user").to_numpy(),
                item_ids=inter.column("item").to_numpy(),
                timestamps=inter.column("timestamp").to_numpy(),
                ratings=inter.column("rating").to_numpy() if "rating" in inter.column_names else None,
                users=Vocabulary.from_arrow(table("users_vocab.parquet")),
                items=Vocabulary.from_arrow(table("items_vocab.parquet")),
                item_table=table("items.parquet", optional=True),
                user_table=table("users.parquet", optional=True),
                name=schema.get("name", path.name),
                meta=schema.get("meta", {}),
            )
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise IntegrityError(f"{path}: the tables do not fit together ({exc}); {rebuild}") from None
        if ds.fingerprint() != schema.get("fingerprint"):
            raise IntegrityError(f"{path}: content does not match the fingerprint in schema.json; {rebuild}")
        return ds


def title_map(item_table: pa.Table | None) -> dict[str, str]:
    """External item id -> title from an item table (empty where there is no table, no ``title`` column, or an
    empty title)."""
    if item_table is None or "title" not in item_table.column_names:
        return {}
    ids, titles = item_table.column(0).to_pylist(), item_table.column("title").to_pylist()
    return {str(i): t for i, t in zip(ids, titles, strict=True) if t}


def from_columns(
    users: Sequence[Any] | np.ndarray,
    items: Sequence[Any] | np.ndarray,
    timestamps: Sequence[float] | np.ndarray | None = None,
    ratings: Sequence[float] | np.ndarray | None = None,
    *,
    item_table: pa.Table | None = None,
    user_table: pa.Table | None = None,
    name: str = "dataset",
    meta: dict[str, Any] | None = None,
) -> Dataset:
    """Build a Dataset from raw columns of external ids (in source order).

    Without timestamps, each interaction's position within its user's rows is used, and the dataset
    records ``timestamp_source = "position"``.
    """
    if len(users) != len(items):
        raise DataError(f"users has {len(users)} rows but items has {len(items)}; columns must align")
    if len(users) == 0:
        raise DataError("no interactions: the input holds no rows; check the file and its separator")
    uvocab, ucodes = Vocabulary.from_sequence(users)
    ivocab, icodes = Vocabulary.from_sequence(items)
    return from_encoded(
        uvocab, ucodes, ivocab, icodes, timestamps, ratings, item_table=item_table, user_table=user_table,
        name=name, meta=meta,
    )  # fmt: skip


def from_encoded(
    uvocab: Vocabulary,
    ucodes: np.ndarray,
    ivocab: Vocabulary,
    icodes: np.ndarray,
    timestamps: Sequence[float] | np.ndarray | None = None,
    ratings: Sequence[float] | np.ndarray | None = None,
    *,
    item_table: pa.Table | None = None,
    user_table: pa.Table | None = None,
    name: str = "dataset",
    meta: dict[str, Any] | None = None,
) -> Dataset:
    """A Dataset from dense codes and their vocabularies (``from_columns`` after encoding; streaming readers
    encode batch by batch and come here)."""
    if len(ucodes) == 0:
        raise DataError("no interactions: the input holds no rows; check the file and its separator")
    meta = dict(meta or {})
    if timestamps is None:
        ts = _positions_within_user(ucodes)
        meta.setdefault("timestamp_source", "position")
    else:
        ts = np.asarray(timestamps, dtype=np.float64)
        if np.isnan(ts).any():
            raise DataError("timestamps contain missing values (NaN); fill or drop them before loading")
        meta.setdefault("timestamp_source", "file")
    if item_table is not None:
        item_table = _align_side_table(item_table, ivocab)
    if user_table is not None:
        user_table = _align_side_table(user_table, uvocab)
    return Dataset(
        user_ids=ucodes,
        item_ids=icodes,
        timestamps=ts,
        ratings=None if ratings is None else np.asarray(ratings, dtype=np.float32),
        users=uvocab,
        items=ivocab,
        item_table=item_table,
        user_table=user_table,
        name=name,
        meta=meta,
    )


def _positions_within_user(ucodes: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each user's rows, in source order."""
    order = np.argsort(ucodes, kind="stable")
    sorted_u = ucodes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_u)) + 1]
    pos_sorted = np.arange(len(ucodes)) - np.repeat(starts, np.diff(np.r_[starts, len(ucodes)]))
    out = np.empty(len(ucodes), dtype=np.float64)
    out[order] = pos_sorted
    return out


def _align_side_table(table: pa.Table, vocab: Vocabulary) -> pa.Table:
    """Keep the rows of a side table whose id (first column) is in the vocabulary, in dense-id order.

    Ids without a row get nulls, so row ``i`` always describes dense id ``i + 1``.
    """
    key = table.column_names[0]
    ids = [str(x) for x in table.column(key).to_pylist()]
    table = table.set_column(0, key, pa.array(ids, type=pa.string()))
    pos = {ext: r for r, ext in enumerate(ids)}
    take = pa.array([pos.get(ext) for ext in vocab.ids], type=pa.int64())
    out = table.take(take.fill_null(0)) if len(ids) else table
    if len(ids) and take.null_count:
        # rows for ids absent from the side table: null every field but the id
        mask = take.is_null()
        cols = [pa.array(vocab.ids, type=pa.string())]
        for c in out.columns[1:]:
            cols.append(pc.if_else(mask, pa.scalar(None, type=c.type), c))
        out = pa.table(cols, names=table.column_names)
    else:
        out = out.set_column(0, key, pa.array(vocab.ids, type=pa.string()))
    return out


def _restrict_table(table: pa.Table | None, vocab: Vocabulary) -> pa.Table | None:
    if table is None:
        return None
    return _align_side_table(table, vocab)
