"""``Vocabulary``: external ids (strings, as the data names them) <-> dense integers 1..n, 0 reserved for padding."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recgen.errors import DataError

PAD = 0


class Vocabulary:
    """Maps external ids (strings) to dense integers ``1..n``; ``0`` is the padding index.

    Args:
        ids: external ids in the order their dense ids should follow (first = 1). Duplicates are an error.
    """

    def __init__(self, ids: Iterable[Any] = ()) -> None:
        self._ids: list[str] = [str(i) for i in ids]
        self._index: dict[str, int] = {}
        for pos, ext in enumerate(self._ids, start=1):
            if ext in self._index:
                raise DataError(f"duplicate id {ext!r} in vocabulary; ids must be unique")
            self._index[ext] = pos

    @classmethod
    def from_sequence(cls, values: Iterable[Any]) -> tuple[Vocabulary, np.ndarray]:
        """Build a vocabulary in first-seen order and return it with the dense codes of ``values``.

        A pyarrow array (what the table readers pass) is encoded in Arrow, without a Python object per row: a
        file of tens of millions of rows keeps to a few bytes per row beyond its Arrow columns.
        """
        if isinstance(values, pa.Array | pa.ChunkedArray):
            builder = VocabularyBuilder()
            codes = builder.encode(values)
            return builder.build(), codes
        index: dict[str, int] = {}
        codes = []
        for v in values:
            key = str(v)
            code = index.get(key)
            if code is None:
                code = len(index) + 1
                index[key] = code
            codes.append(code)
        vocab = cls.__new__(cls)
        vocab._ids = list(index)
        vocab._index = index
        return vocab, np.asarray(codes, dtype=np.int64)

    def __len__(self) -> int:
        """Number of real ids (padding not counted)."""
        return len(self._ids)

    @property
    def size(self) -> int:
        """Number of rows a table indexed by dense id needs: ``len(self) + 1`` (row 0 is padding)."""
        return len(self._ids) + 1

    @property
    def ids(self) -> list[str]:
        """External ids in dense order (position 0 holds dense id 1)."""
        return list(self._ids)

    def __contains__(self, ext: Any) -> bool:
        return str(ext) in self._index

    def index(self, ext: Any, default: int | None = None) -> int:
        """Dense id of one external id; ``default`` (or a DataError) when unknown."""
        code = self._index.get(str(ext))
        if code is None:
            if default is not None:
                return default
            raise DataError(f"unknown id {ext!r}: it is not in this vocabulary of {len(self)} ids")
        return code

    def lookup(self, exts: Iterable[Any], default: int = PAD) -> np.ndarray:
        """Dense ids of many external ids; unknown ids map to ``default`` (padding by default)."""
        get = self._index.get
        return np.fromiter((get(str(e), default) for e in exts), dtype=np.int64)

    def external(self, codes: Iterable[int] | np.ndarray) -> np.ndarray:
        """External ids of dense ids (object array of str)."""
        arr = np.asarray(codes, dtype=np.int64)
        if arr.size and (arr.min() < 1 or arr.max() > len(self._ids)):
            raise DataError(f"dense ids must lie in 1..{len(self._ids)}, got {arr.min()}..{arr.max()}")
        table = np.asarray(self._ids, dtype=object)
        return table[arr - 1]

    def to_arrow(self) -> pa.Table:
        return pa.table({"id": pa.array(self._ids, type=pa.string())})

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Vocabulary:
        return cls(table.column("id").to_pylist())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._ids == other._ids

    def __repr__(self) -> str:
        return f"Vocabulary(n={len(self)})"


class VocabularyBuilder:
    """A vocabulary grown batch by batch in first-seen order: each Arrow batch of ids is dictionary-encoded in
    Arrow and only its distinct values touch Python, so a file streamed in blocks never holds its id strings."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}

    def encode(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Dense codes (from 1) of ``values``; new ids get the next codes in the order they first appear."""
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
        if pa.types.is_large_string(values.type) or not pa.types.is_string(values.type):
            values = values.cast(pa.large_string())
        encoded = pc.dictionary_encode(values)  # the batch's distinct ids in first-seen order
        index = self._index
        lut = np.empty(len(encoded.dictionary), dtype=np.int64)
        for j, key in enumerate(encoded.dictionary.to_pylist()):
            code = index.get(key)
            if code is None:
                code = index[key] = len(index) + 1
            lut[j] = code
        codes = lut[encoded.indices.to_numpy(zero_copy_only=False)]
        # int32 while a file streams in (half the memory of its id columns); a Dataset widens them once
        return codes.astype(np.int32) if len(index) < 2**31 - 1 else codes

    def build(self) -> Vocabulary:
        vocab = Vocabulary.__new__(Vocabulary)
        vocab._ids = list(self._index)
        vocab._index = self._index
        return vocab
