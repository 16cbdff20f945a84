"""Item tokenizers: unique codes, exact decoding, collision handling, residual quantisation quality."""

import numpy as np
import pytest

from recgen.errors import ConfigError, DataError
from recgen.tokenize.codebook import IDTokenizer, RQKMeansTokenizer


def test_id_tokenizer_round_trip():
    tok = IDTokenizer().fit(5)
    assert tok.encode(3) == (2, 0) and tok.decode((2, 0)) == 3 and tok.decode((7, 0)) is None
    assert tok.stats_.collision_rate == 0.0
    with pytest.raises(DataError):
        tok.encode(0)


def test_rq_kmeans_codes_are_unique_and_decode_exactly():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(300, 16))
    tok = RQKMeansTokenizer(levels=2, codebook_size=8, seed=1).fit(emb)
    codes = {tok.encode(i) for i in range(1, 301)}
    assert len(codes) == 300 and tok.levels == 3
    assert all(tok.decode(tok.encode(i)) == i for i in range(1, 301))
    # 64 prefixes for 300 items: collisions must have happened and been resolved by the extra level
    assert tok.stats_.collision_rate > 0 and tok.stats_.extra_level_size >= 5
    assert all(1.0 <= p <= 8.0 for p in tok.stats_.perplexity)


def test_more_levels_reconstruct_better():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(400, 8))
    errs = [RQKMeansTokenizer(levels=n, codebook_size=16, seed=0).fit(emb).stats_.reconstruction_mse for n in (1, 2, 3)]
    total = float((emb**2).sum(1).mean())
    assert errs[0] < total and errs[1] < errs[0] and errs[2] < errs[1]


def test_identical_embeddings_collide_and_still_get_unique_ids():
    emb = np.repeat(np.eye(3), 4, axis=0)  # 12 items, 3 distinct points
    tok = RQKMeansTokenizer(levels=1, codebook_size=3).fit(emb)
    assert tok.stats_.collision_rate == 1.0 and tok.stats_.extra_level_size == 4
    assert len({tok.encode(i) for i in range(1, 13)}) == 12


def test_bad_arguments():
    with pytest.raises(ConfigError):
        RQKMeansTokenizer(levels=0)
    with pytest.raises(DataError):
        RQKMeansTokenizer().fit(np.zeros(4))
