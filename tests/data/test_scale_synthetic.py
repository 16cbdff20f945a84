"""The seeded synthetic data of the scale measurements: exact size, seeded, power-law, sessions."""

import numpy as np

from recgen.testing.synthetic import make_scale_dataset


def test_scale_dataset_is_exact_seeded_power_law_and_sessioned():
    ds = make_scale_dataset(50_000, 5_000, topic_size=50, seed=3)
    assert ds.n_interactions == 50_000 and ds.n_items == 5_000 and ds.meta["synthetic"]
    assert "synthetic" in ds.name
    again = make_scale_dataset(50_000, 5_000, topic_size=50, seed=3)
    assert np.array_equal(ds.item_ids, again.item_ids) and np.array_equal(ds.user_ids, again.user_ids)
    assert not np.array_equal(ds.item_ids, make_scale_dataset(50_000, 5_000, topic_size=50, seed=4).item_ids)
    lengths = np.bincount(ds.user_ids)[1:]
    assert lengths.min() >= 3 and lengths.max() < 40 * lengths.mean()  # no user soaks up the rounding
    counts = np.sort(ds.item_counts()[1:])[::-1]
    # Zipf with exponent 1 over 5,000 items: the top item holds about 1 / H(5000) = 11% of the draws
    assert 0.08 < counts[0] / counts.sum() < 0.14 and counts[0] > 20 * counts[500]
    # sessions: consecutive items of a user share a topic far more often than two random items (1 in 100 topics)
    topic = make_topics(ds)
    same_user = ds.user_ids[1:] == ds.user_ids[:-1]
    same_topic = topic[ds.item_ids[1:]] == topic[ds.item_ids[:-1]]
    assert same_topic[same_user].mean() > 0.6
    assert np.all(np.diff(ds.timestamps)[same_user] == 1)  # positions within a user, in order


def make_topics(ds):
    """The generator's item -> topic map, recovered by re-drawing its seeded permutations."""
    p = ds.meta["params"]
    rng = np.random.default_rng(p["seed"])
    rng.permutation(p["n_items"])  # the popularity order
    topic = rng.permutation(p["n_items"]) // p["topic_size"]
    return np.r_[-1, topic]  # dense ids start at 1
