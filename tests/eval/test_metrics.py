"""Metrics against hand-computed cases and independent libraries (pytrec_eval, scikit-learn)."""

import math

import numpy as np
import pytest
import pytrec_eval
import torch
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from recgen.eval.metrics import (
    auc,
    average_popularity,
    coverage,
    gauc,
    gini,
    log_loss,
    mae,
    ranking_metrics_from_ranks,
    rmse,
)
from recgen.ops.topk import stable_topk, target_ranks

MISS = 1000


def test_single_target_hand_computed():
    ranks = np.array([[1], [3], [7], [MISS]])
    m = ranking_metrics_from_ranks(ranks, np.array([1, 1, 1, 1]), ks=(5, 10), miss_rank=MISS)
    np.testing.assert_allclose(m["recall@5"], [1, 1, 0, 0])
    np.testing.assert_allclose(m["recall@10"], [1, 1, 1, 0])
    np.testing.assert_allclose(m["ndcg@5"], [1.0, 1 / math.log2(4), 0, 0])
    np.testing.assert_allclose(m["ndcg@10"], [1.0, 0.5, 1 / math.log2(8), 0])
    np.testing.assert_allclose(m["mrr"], [1.0, 1 / 3, 1 / 7, 0.0])
    np.testing.assert_allclose(m["precision@5"], [0.2, 0.2, 0, 0])


def test_multi_target_hand_computed():
    # user has 3 targets at ranks 2, 4, 11 (cut-off 5): 2 hits
    ranks = np.array([[2, 4, 11]])
    m = ranking_metrics_from_ranks(ranks, np.array([3]), ks=(5,), miss_rank=MISS)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["recall@5"][0] == pytest.approx(2 / 3)
    assert m["hit@5"][0] == 1.0
    assert m["ndcg@5"][0] == pytest.approx(dcg / idcg)
    assert m["mrr"][0] == pytest.approx(0.5)


def test_against_pytrec_eval():
    """Random scores and targets: our full-ranking metrics equal trec_eval's on the same rankings."""
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 60
    scores = torch.from_numpy(rng.integers(0, 15, size=(n_users, n_items)).astype(np.float32))  # many ties
    n_t = rng.integers(1, 4, size=n_users)
    targets = np.full((n_users, 3), -1)
    for u in range(n_users):
        targets[u, : n_t[u]] = rng.choice(n_items, size=n_t[u], replace=False)
    ranks = target_ranks(scores, torch.from_numpy(targets)).numpy()
    ranks[ranks > n_items] = MISS
    ours = ranking_metrics_from_ranks(ranks, n_t, ks=(5, 10), miss_rank=MISS)
    # the same total order as a run for trec_eval: unique descending scores by position
    _, order = stable_topk(scores, n_items)
    run = {f"u{u}": {f"d{int(i)}": float(n_items - pos) for pos, i in enumerate(order[u])} for u in range(n_users)}
    qrels = {f"u{u}": {f"d{int(t)}": 1 for t in targets[u, : n_t[u]]} for u in range(n_users)}
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_5", "ndcg_cut_10", "recall_5", "recall_10", "recip_rank"})
    ref = ev.evaluate(run)
    for u in range(n_users):
        r = ref[f"u{u}"]
        assert ours["ndcg@5"][u] == pytest.approx(r["ndcg_cut_5"], abs=1e-9)
        assert ours["ndcg@10"][u] == pytest.approx(r["ndcg_cut_10"], abs=1e-9)
        assert ours["recall@5"][u] == pytest.approx(r["recall_5"], abs=1e-9)
        assert ours["recall@10"][u] == pytest.approx(r["recall_10"], abs=1e-9)
        assert ours["mrr"][u] == pytest.approx(r["recip_rank"], abs=1e-9)


def test_stable_topk_breaks_ties_by_index():
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0, -torch.inf], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    vals, idx = stable_topk(scores, 3)
    assert idx.tolist() == [[1, 2, 4], [0, 1, 2]]
    ref = torch.sort(scores, dim=1, descending=True, stable=True).indices
    rng = np.random.default_rng(1)
    big = torch.from_numpy(rng.integers(0, 5, size=(30, 50)).astype(np.float32))
    _, idx = stable_topk(big, 7)
    ref = torch.sort(big, dim=1, descending=True, stable=True).indices[:, :7]
    assert torch.equal(idx, ref)


def test_target_ranks_match_sorted_position():
    rng = np.random.default_rng(2)
    scores = torch.from_numpy(rng.integers(0, 6, size=(20, 30)).astype(np.float32))
    scores[:, 0] = -torch.inf
    targets = torch.from_numpy(rng.integers(1, 30, size=(20, 2)))
    ranks = target_ranks(scores, targets)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    for u in range(20):
        for j in range(2):
            pos = (order[u] == targets[u, j]).nonzero().item() + 1
            assert ranks[u, j].item() == pos
    # rows with and without ties, and a target slot only some rows fill (-1 = none)
    mixed = torch.from_numpy(rng.permutation(60 * 40).reshape(60, 40).astype(np.float64))  # distinct scores
    mixed[::3] = torch.from_numpy(rng.integers(0, 4, size=(20, 40)).astype(np.float64))  # every third row tied
    tg = torch.from_numpy(rng.integers(0, 40, size=(60, 2)))
    tg[1::2, 1] = -1
    got = target_ranks(mixed, tg)
    order = torch.sort(mixed, dim=1, descending=True, stable=True).indices
    for u in range(60):
        for j in range(2):
            want = 41 if tg[u, j] < 0 else (order[u] == tg[u, j]).nonzero().item() + 1
            assert got[u, j].item() == want, (u, j)
    # an excluded (-inf) target is a miss
    scores[0, 5] = -torch.inf
    assert target_ranks(scores, torch.tensor([[5]] + [[1]] * 19))[0, 0].item() == 31


def test_beyond_accuracy_hand_computed():
    recs = np.array([[1, 2], [1, 3], [1, 0]])  # 0 = empty slot
    assert coverage(recs, n_items=6) == pytest.approx(3 / 6)
    counts = np.array([0, 10, 4, 2, 0, 0, 0])
    # per user mean popularity: (10+4)/2, (10+2)/2, 10/1
    assert average_popularity(recs, counts) == pytest.approx(np.mean([7, 6, 10]))
    # recommendation counts over 6 items: [3,1,1,0,0,0]
    x = np.sort(np.array([3, 1, 1, 0, 0, 0], dtype=float))
    n = 6
    expected = np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / (n * x.sum())
    assert gini(recs, 6) == pytest.approx(expected)
    assert gini(np.array([[1], [2], [3]]), 3) == pytest.approx(0.0)


def test_rating_and_click_metrics_against_sklearn():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=200)
    s = rng.integers(0, 10, size=200) / 10.0  # ties
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s))
    p = np.clip(rng.random(200), 0.01, 0.99)
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p))
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    users = rng.integers(0, 10, size=200)
    expected, weight = 0.0, 0
    for u in np.unique(users):
        m = users == u
        if len(np.unique(y[m])) == 2:
            expected += roc_auc_score(y[m], s[m]) * m.sum()
            weight += m.sum()
    assert gauc(users, y, s) == pytest.approx(expected / weight)


def test_metric_input_errors():
    with pytest.raises(ValueError, match="both classes"):
        auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="align"):
        rmse([1, 2], [1])
    with pytest.raises(ValueError, match="probabilities"):
        log_loss([1, 0], [2.0, 0.1])
