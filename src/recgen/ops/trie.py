"""The prefix trie behind constrained decoding: generation may only continue a prefix of an existing item.

One structure serves every generator that names items token by token: TIGER walks it over semantic-ID codes
(all sequences one length, read as per-level tables so a batch of beams gathers its masks at once), BIGRec over
the token sequences of catalogue titles (sequences of any length, read one prefix at a time through
transformers' ``prefix_allowed_tokens_fn``). Every complete sequence maps to its item, so a finished beam is a
catalogue item by construction (the invalid-ID / out-of-catalogue rate is 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recgen.errors import DataError


class PrefixTrie:
    """Prefix trie over integer token sequences, each naming one value (an item id).

    Args:
        sequences: the token sequences; a sequence that repeats an earlier one keeps the earlier value (e.g.
            two items with the same title: the trie returns the first of them).
        values: one value per sequence (default: 1, 2, ..., the dense item ids).
    """

    def __init__(self, sequences: Sequence[Sequence[int]], values: Sequence[int] | None = None) -> None:
        if values is not None and len(values) != len(sequences):
            raise DataError(f"{len(sequences)} sequences but {len(values)} values; they must align")
        self.root: dict[int, Any] = {}
        self.values: dict[tuple[int, ...], int] = {}
        for i, seq in enumerate(sequences):
            key = tuple(int(t) for t in seq)
            if key in self.values:
                continue
            self.values[key] = int(values[i]) if values is not None else i + 1
            node = self.root
            for t in key:
                node = node.setdefault(t, {})

    def __len__(self) -> int:
        return len(self.values)

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        """The tokens that continue ``prefix`` inside the trie ([] when it has left the trie or is complete)."""
        node = self.root
        for t in prefix:
            node = node.get(int(t))
            if node is None:
                return []
        return list(node)

    def lookup(self, sequence: Sequence[int]) -> int | None:
        """The value a complete sequence names, or None."""
        return self.values.get(tuple(int(t) for t in sequence))

    def level_tables(self, level_sizes: Sequence[int]) -> list[np.ndarray]:
        """The trie as one dense table per level, for batched beam search over sequences that all have
        ``len(level_sizes)`` tokens (TIGER's code tuples; token ``c`` at level l is below ``level_sizes[l]``).

        ``table[l][p, c]`` is the index of prefix (p, c) at level l + 1 (at the last level: the sequence's value),
        -1 where no sequence continues that way; level 0 has the single empty prefix 0.
        """
        if any(len(k) != len(level_sizes) for k in self.values):
            raise DataError(f"level tables need sequences of {len(level_sizes)} tokens each")
        codes = np.array(list(self.values), dtype=np.int64).reshape(len(self.values), len(level_sizes))
        values = np.fromiter(self.values.values(), dtype=np.int64, count=len(self.values))
        tables = []
        prefix_ids = np.zeros(len(codes), dtype=np.int64)  # every sequence's prefix index at the current level
        for lv, size in enumerate(level_sizes):
            n_prefix = int(prefix_ids.max()) + 1 if len(codes) else 1
            table = np.full((n_prefix, size), -1, dtype=np.int64)
            if lv == len(level_sizes) - 1:
                table[prefix_ids, codes[:, lv]] = values
            else:
                pairs = prefix_ids * size + codes[:, lv]
                uniq, inv = np.unique(pairs, return_inverse=True)
                table.reshape(-1)[uniq] = np.arange(len(uniq))
                prefix_ids = inv.reshape(-1)
            tables.append(table)
        return tables
