import numpy as np
import pytest

from recgen.data.split import leave_one_out, ratio_split
from recgen.errors import ConfigError
from recgen.eval.evaluator import evaluate
from recgen.models import create_model
from recgen.testing import make_cluster_dataset


@pytest.fixture(scope="module")
def fitted():
    ds = make_cluster_dataset(n_clusters=6, users_per_cluster=25, items_per_cluster=10, seed=5)
    split = leave_one_out(ds)
    return split, create_model("itemknn", k=5).fit(split.train)


@pytest.mark.parametrize("protocol", ["loo", "ratio"])
def test_identical_at_any_batch_size(protocol):
    ds = make_cluster_dataset(n_clusters=6, users_per_cluster=25, items_per_cluster=10, seed=5)
    split = leave_one_out(ds) if protocol == "loo" else ratio_split(ds, valid_frac=0.2, test_frac=0.3)
    model = create_model("ease", l2=3.0).fit(split.train)
    ref = evaluate(model, split.test, batch_size=10_000)
    for bs in (1, 3, 64):
        res = evaluate(model, split.test, batch_size=bs)
        assert res.metrics == ref.metrics
        for k, v in ref.per_user.items():
            np.testing.assert_array_equal(res.per_user[k], v)


def test_exclude_seen_switch(fitted):
    split, model = fitted
    on = evaluate(model, split.test, ks=(10,))
    off = evaluate(model, split.test, ks=(10,), exclude_seen=False)
    # with history items allowed, they occupy top slots (the model scores co-occurring history items high)
    assert on.metrics["recall@10"] >= off.metrics["recall@10"]
    assert on.metrics != off.metrics


def test_sampled_metrics_are_labelled_and_optional(fitted):
    split, model = fitted
    plain = evaluate(model, split.test)
    assert not any(k.startswith("sampled") for k in plain.metrics)
    sampled = evaluate(model, split.test, sampled_negatives=20, seed=1)
    keys = [k for k in sampled.metrics if k.startswith("sampled20_")]
    assert "sampled20_hit@10" in keys and "sampled20_mrr" in keys
    # a target ranked among 20 negatives is never worse than among the whole catalogue
    assert sampled.metrics["sampled20_hit@10"] >= plain.metrics["hit@10"]


def test_repeat_consumption_target_counts_as_miss():
    from recgen.data.dataset import from_columns

    # user a: x y x  -> test target x is already in the history: excluded, so a miss
    ds = from_columns(["a", "a", "a", "b", "b", "b"], ["x", "y", "x", "y", "z", "x"], [1, 2, 3, 1, 2, 3])
    split = leave_one_out(ds)
    model = create_model("pop").fit(split.train)
    res = evaluate(model, split.test, ks=(1, 3))
    assert res.metrics["targets_excluded_as_seen"] == 1.0
    assert res.per_user["recall@3"][0] == 0.0
    assert evaluate(model, split.test, ks=(3,), exclude_seen=False).per_user["recall@3"][0] == 1.0


def test_bad_arguments(fitted):
    split, model = fitted
    with pytest.raises(ConfigError, match="batch_size"):
        evaluate(model, split.test, batch_size=0)
    with pytest.raises(ConfigError, match="cut-offs"):
        evaluate(model, split.test, ks=(0, 5))
