"""Counts of the real datasets (read from RECGEN_DATA_DIR; skipped where absent, a failure in CI)."""

import pytest

from recgen.data.loaders import load_dataset
from recgen.data.split import leave_one_out

EXPECTED = {
    "ml-100k": (943, 1682, 100000),
    "beauty": (22363, 12101, 198502),
    "sports": (35598, 18357, 296337),
    "toys": (19412, 11924, 167597),
    "yelp": (30431, 20033, 316354),
    "lastfm": (1090, 3646, 52551),
}


@pytest.mark.realdata
@pytest.mark.parametrize("name", list(EXPECTED))
def test_counts(real_data_dir, name):
    ds = load_dataset(name, data_dir=real_data_dir)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == EXPECTED[name]


@pytest.mark.realdata
def test_ml100k_ties_follow_file_order(real_data_dir):
    """44% of ML-100K users have their last two ratings in the same second; the file order decides."""
    ds = load_dataset("ml-100k", data_dir=real_data_dir)
    indptr, items = ds.user_sequences()
    order = ds.chronological_order()
    ts = ds.timestamps[order]
    tied = sum(ts[indptr[u + 1] - 1] == ts[indptr[u + 1] - 2] for u in range(1, ds.n_users + 1))
    assert 0.40 < tied / ds.n_users < 0.48
    sp = leave_one_out(ds)
    assert sp.test.n_users == 943 and sp.train.n_interactions == 100000 - 2 * 943
