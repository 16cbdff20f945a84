"""Model-specific checks: EASE against a dense numpy reference, learnability, bad config."""

import numpy as np
import pytest

from recgen.data.split import leave_one_out
from recgen.errors import ConfigError
from recgen.eval.evaluator import evaluate
from recgen.models import create_model
from recgen.testing import make_cluster_dataset


def dense_ease_reference(ds, l2):
    """Steck (2019) listing, verbatim in dense numpy: G = X^T X + l2 I, P = G^-1, B = -P / diag(P), diag 0."""
    x = np.zeros((ds.n_users, ds.n_items))
    x[ds.user_ids - 1, ds.item_ids - 1] = 1.0
    g = x.T @ x
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    b = p / (-np.diag(p))
    np.fill_diagonal(b, 0.0)
    return x, b


@pytest.mark.parametrize("l2", [1.0, 50.0, 500.0])
def test_ease_matches_dense_reference(tiny_dataset, l2):
    model = create_model("ease", l2=l2).fit(tiny_dataset)
    x, b = dense_ease_reference(tiny_dataset, l2)
    np.testing.assert_allclose(model.weights_[1:, 1:], b, atol=1e-6)
    # scores for every user through the public scoring path
    users = np.arange(1, tiny_dataset.n_users + 1)
    hists = [model.train_history(u) for u in users]
    scores = model.score(users, hists).numpy()[:, 1:]
    np.testing.assert_allclose(scores, x @ b, atol=1e-6)


def test_ease_matches_reference_on_a_larger_random_matrix():
    from recgen.data.dataset import from_columns

    rng = np.random.default_rng(3)
    cells = np.argwhere(rng.random((120, 1500)) < 0.03)  # > 1024 items exercises the blockwise symmetrisation
    ds = from_columns([f"u{u}" for u in cells[:, 0]], [f"i{i}" for i in cells[:, 1]])
    model = create_model("ease", l2=20.0).fit(ds)
    _, b = dense_ease_reference(ds, 20.0)
    np.testing.assert_allclose(model.weights_[1:, 1:], b, atol=1e-6)


@pytest.mark.parametrize(
    "name,config",
    [
        ("itemknn", {"k": 20}),
        ("ease", {"l2": 5.0}),
        ("bpr", {"epochs": 200, "lr": 0.01, "batch_size": 32, "reg": 0.0}),
    ],
)
def test_learns_cluster_structure(name, config):
    """Users hold 6 of their cluster's 8 items; the held-out items must rank at the top."""
    ds = make_cluster_dataset(n_clusters=5, users_per_cluster=20, items_per_cluster=8, seed=1)
    split = leave_one_out(ds)
    model = create_model(name, **config).fit(split.train, valid=split.valid)
    res = evaluate(model, split.test, ks=(1, 3))
    pop = evaluate(create_model("pop").fit(split.train), split.test, ks=(3,))
    assert res.metrics["recall@3"] >= 0.95, res.metrics
    assert res.metrics["recall@3"] > pop.metrics["recall@3"] + 0.5


@pytest.mark.parametrize(
    "name,field,value,match",
    [
        ("ease", "l2", -1, "l2 must be > 0"),
        ("itemknn", "k", 0, "k must be >= 1"),
        ("bpr", "lr", 0, "lr must be > 0"),
        ("bpr", "epochs", "many", "epochs must be int"),
        ("ease", "nope", 1, "unknown config field"),
    ],
)
def test_bad_config(name, field, value, match):
    with pytest.raises(ConfigError, match=match):
        create_model(name, **{field: value})


def test_unknown_model():
    with pytest.raises(ConfigError, match="available models"):
        create_model("nosuch")


def test_bpr_selects_best_validation_epoch(tiny_split):
    model = create_model("bpr", epochs=12, eval_every=3, patience=10, batch_size=64, lr=0.01)
    model.fit(tiny_split.train, valid=tiny_split.valid)
    evals = [e for e in model.train_log_ if "valid_ndcg@10" in e]
    best = max(evals, key=lambda e: e["valid_ndcg@10"])
    assert model.best_epoch_ == best["epoch"]
    assert evaluate(model, tiny_split.valid, ks=(10,)).metrics["ndcg@10"] == pytest.approx(best["valid_ndcg@10"])
