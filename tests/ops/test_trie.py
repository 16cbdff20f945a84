"""The shared constrained-decoding trie: TIGER's per-level tables and BIGRec's prefix walks agree."""

import numpy as np
import pytest

from recgen.errors import DataError
from recgen.ops.trie import PrefixTrie


def test_prefix_walk_allows_only_catalogue_continuations():
    trie = PrefixTrie([(1, 2, 3), (1, 4), (5,)])
    assert sorted(trie.allowed([])) == [1, 5]
    assert sorted(trie.allowed([1])) == [2, 4]
    assert trie.allowed([1, 2]) == [3] and trie.allowed([9]) == [] and trie.allowed([5]) == []
    assert trie.lookup([1, 4]) == 2 and trie.lookup([1, 2]) is None and trie.lookup((5,)) == 3


def test_repeated_sequence_keeps_the_first_value():
    trie = PrefixTrie([(7, 8), (7, 8), (7, 9)], values=[10, 11, 12])
    assert len(trie) == 2 and trie.lookup([7, 8]) == 10 and trie.lookup([7, 9]) == 12
    with pytest.raises(DataError, match="align"):
        PrefixTrie([(1,), (2,)], values=[1])


def test_level_tables_walk_to_every_item_and_nowhere_else():
    rng = np.random.default_rng(0)
    codes = np.unique(rng.integers(0, 4, size=(40, 3)), axis=0)
    rng.shuffle(codes)
    sizes = [4, 4, 4]
    tables = PrefixTrie(codes).level_tables(sizes)
    reached = {}
    for a in range(4):
        p1 = tables[0][0, a]
        for b in range(4):
            p2 = tables[1][p1, b] if p1 >= 0 else -1
            for c in range(4):
                item = tables[2][p2, c] if p2 >= 0 else -1
                if item >= 0:
                    reached[(a, b, c)] = int(item)
    assert reached == {tuple(int(v) for v in row): i + 1 for i, row in enumerate(codes)}
    with pytest.raises(DataError, match="3 tokens"):
        PrefixTrie([(1, 2)]).level_tables(sizes)
