import numpy as np
import pytest

from recgen.data.dataset import from_columns
from recgen.data.filters import deduplicate, k_core, rating_threshold
from recgen.data.split import leave_one_out, make_split, ratio_split, temporal_split
from recgen.errors import ConfigError, DataError


def test_leave_one_out_uses_stable_time_order():
    # user a: p(t=1) then q, r, s all at t=9 in file order q, s, r -> sequence p q s r
    ds = from_columns(["a"] * 4 + ["b"] * 2, ["q", "p", "s", "r", "x", "y"], [9, 1, 9, 9, 1, 2])
    sp = leave_one_out(ds)
    items = ds.items
    assert list(items.external(sp.test.targets(0))) == ["r"]
    assert list(items.external(sp.valid.targets(0))) == ["s"]
    assert list(items.external(sp.test.history(0))) == ["p", "q", "s"]
    assert list(items.external(sp.valid.history(0))) == ["p", "q"]
    # b has only 2 interactions: training only, not evaluated
    assert sp.test.n_users == 1 and sp.protocol["users_train_only"] == 1
    assert sp.train.n_interactions == 4
    assert "equal timestamps keep the source file's order" in sp.describe()


def test_leave_one_out_partition(tiny_dataset):
    sp = leave_one_out(tiny_dataset)
    n_eval = sp.test.n_users
    assert sp.train.n_interactions + 2 * n_eval == tiny_dataset.n_interactions
    for i in range(n_eval):
        assert len(sp.test.history(i)) == len(sp.valid.history(i)) + 1


def test_temporal_split_cuts_global_time():
    ds = from_columns(["a", "b", "a", "b", "a", "b", "a", "b", "a", "b"], list("pqrstuvwxy"), list(range(10)))
    sp = temporal_split(ds, valid_frac=0.2, test_frac=0.2)
    assert sp.train.timestamps.max() < 6
    assert sorted(ds.items.external(sp.test.target_items)) == ["x", "y"]
    assert sorted(ds.items.external(sp.valid.target_items)) == ["v", "w"]
    pos = from_columns(["a", "a"], ["x", "y"])
    with pytest.raises(ConfigError, match="no real timestamps"):
        temporal_split(pos)


def test_ratio_split_seeded_and_keeps_training(tiny_dataset):
    a = ratio_split(tiny_dataset, valid_frac=0.2, test_frac=0.2, seed=3)
    b = ratio_split(tiny_dataset, valid_frac=0.2, test_frac=0.2, seed=3)
    c = ratio_split(tiny_dataset, valid_frac=0.2, test_frac=0.2, seed=4)
    np.testing.assert_array_equal(a.test.target_items, b.test.target_items)
    assert not np.array_equal(a.test.target_items, c.test.target_items)
    assert np.all(np.bincount(a.train.user_ids, minlength=tiny_dataset.users.size)[1:] >= 1)
    n = len(a.test.target_items) + len(a.valid.target_items) + a.train.n_interactions
    assert n == tiny_dataset.n_interactions
    with pytest.raises(ConfigError, match="must be < 1"):
        ratio_split(tiny_dataset, valid_frac=0.5, test_frac=0.5)
    with pytest.raises(ConfigError, match="unknown split protocol"):
        make_split(tiny_dataset, "bogus")


def _brute_kcore(pairs, k):
    pairs = set(pairs)
    while True:
        from collections import Counter

        cu = Counter(u for u, _ in pairs)
        ci = Counter(i for _, i in pairs)
        keep = {(u, i) for u, i in pairs if cu[u] >= k and ci[i] >= k}
        if keep == pairs:
            return keep
        pairs = keep


def test_k_core_matches_brute_force():
    rng = np.random.default_rng(0)
    cells = {(int(u), int(i)) for u, i in zip(rng.integers(0, 40, 400), rng.integers(0, 30, 400), strict=True)}
    users, items = zip(*sorted(cells), strict=True)
    ds = from_columns([f"u{u}" for u in users], [f"i{i}" for i in items])
    out = k_core(ds, 3, 3)
    got = set(zip(out.users.external(out.user_ids), out.items.external(out.item_ids), strict=True))
    assert got == {(f"u{u}", f"i{i}") for u, i in _brute_kcore(cells, 3)}
    assert out.meta["filters"][-1]["k_core"] == {"min_user": 3, "min_item": 3}
    with pytest.raises(DataError, match="removed every interaction"):
        k_core(ds, 1000, 1000)


def test_rating_threshold_and_dedup():
    ds = from_columns(["a", "a", "b", "a"], ["x", "y", "x", "x"], [1, 2, 3, 4], ratings=[5, 2, 4, 1])
    pos = rating_threshold(ds, 4)
    assert pos.n_interactions == 2 and pos.ratings.min() >= 4
    first = deduplicate(ds, "first")
    last = deduplicate(ds, "last")
    assert first.n_interactions == last.n_interactions == 3
    assert sorted(first.timestamps.tolist()) == [1, 2, 3]
    assert sorted(last.timestamps.tolist()) == [2, 3, 4]
    assert deduplicate(ds, "all") is ds
    with pytest.raises(DataError, match="no ratings"):
        rating_threshold(from_columns(["a"], ["b"]), 4)
    with pytest.raises(ConfigError):
        deduplicate(ds, "middle")


def test_item_cold_start_keeps_cold_items_out_of_training_and_histories():
    from recgen.data.split import item_cold_start, make_split
    from recgen.testing import make_cluster_dataset

    ds = make_cluster_dataset(n_clusters=4, users_per_cluster=20, items_per_cluster=10, seed=2)
    split = item_cold_start(ds, cold_frac=0.2, seed=1)
    cold = set(split.cold_items.tolist())
    assert len(cold) == 8 and split.protocol["cold_items"] == 8
    assert not cold & set(split.train.item_ids.tolist())  # no interaction with a cold item is trained on
    assert not cold & set(split.valid.history_items.tolist())
    valid_target = {int(u): int(split.valid.targets(i)[0]) for i, u in enumerate(split.valid.user_ids)}
    for i, u in enumerate(split.test.user_ids):  # a test history holds a cold item only as its validation item
        assert {int(x) for x in split.test.history(i)} & cold <= {valid_target.get(int(u))}
    parts = split.test_parts
    assert parts["cold"].n_users + parts["warm"].n_users == split.test.n_users > 0
    assert all(int(parts["cold"].targets(i)[0]) in cold for i in range(parts["cold"].n_users))
    assert all(int(parts["warm"].targets(i)[0]) not in cold for i in range(parts["warm"].n_users))
    again = make_split(ds, "item-cold-start", cold_frac=0.2, seed=1)
    assert np.array_equal(again.cold_items, split.cold_items)  # seeded
    assert not np.array_equal(item_cold_start(ds, cold_frac=0.2, seed=2).cold_items, split.cold_items)
    with pytest.raises(ConfigError, match="cold_frac"):
        item_cold_start(ds, cold_frac=1.5)


def test_user_cold_start_keeps_only_the_first_interactions_of_the_chosen_users():
    from recgen.data.split import user_cold_start

    # 10 users of 12 interactions (u0..u9, items i0..i11 in time order), one user of 3 (short)
    users = [f"u{u}" for u in range(10) for _ in range(12)] + ["s"] * 3
    items = [f"i{t}" for _ in range(10) for t in range(12)] + ["i0", "i1", "i2"]
    times = [t for _ in range(10) for t in range(12)] + [0, 1, 2]
    ds = from_columns(users, items, times)
    split = user_cold_start(ds, cold_frac=0.3, max_train=4, seed=0)
    p = split.protocol
    assert p["name"] == "user-cold-start" and p["chosen_users"] == 3  # 30% of the 11 evaluated users, rounded
    cold, warm = split.test_parts["cold"], split.test_parts["warm"]
    ext = ds.users.external
    # the short user has 1 training interaction: cold by its history whether chosen or not
    assert "s" in set(ext(cold.user_ids)) and cold.n_users + warm.n_users == split.test.n_users == 11
    assert p["dropped_interactions"] == 6 * sum(ext(u) != "s" for u in cold.user_ids)  # 12 - 4 - 1 - 1 each
    for i in range(cold.n_users):
        if ext(cold.user_ids[i]) != "s":  # i0..i3 train, i4 validates (in the test history), i5 tests
            assert list(ds.items.external(cold.history(i))) == ["i0", "i1", "i2", "i3", "i4"]
            assert list(ds.items.external(cold.targets(i))) == ["i5"]
    for i in range(warm.n_users):  # leave-one-out
        assert len(warm.history(i)) == 11 and list(ds.items.external(warm.targets(i))) == ["i11"]
    n_train = np.bincount(split.train.user_ids, minlength=ds.users.size)
    assert sorted(n_train[1:].tolist()) == [1] + [4] * (cold.n_users - 1) + [10] * warm.n_users
    again = make_split(ds, "user-cold-start", cold_frac=0.3, max_train=4, seed=0)
    assert np.array_equal(again.test_parts["cold"].user_ids, cold.user_ids)  # seeded
    with pytest.raises(ConfigError, match="cold_frac"):
        user_cold_start(ds, cold_frac=0.0)
    with pytest.raises(ConfigError, match="max_train"):
        user_cold_start(ds, max_train=0)
