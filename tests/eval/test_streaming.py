"""Catalogue-scale evaluation: ranking a catalogue a block of items at a time gives the metrics of whole rows."""

import numpy as np
import pytest

from recgen.data.split import leave_one_out, ratio_split
from recgen.errors import ConfigError
from recgen.eval.evaluator import evaluate
from recgen.models import create_model
from recgen.testing import make_cluster_dataset

SMALL_NET = {"embedding_dim": 16, "n_layers": 1, "n_heads": 1, "max_seq_len": 8, "epochs": 2, "batch_size": 16}
MODELS = {
    "pop": {},
    "itemknn": {"k": 5},
    "sasrec": SMALL_NET,
    "hstu": SMALL_NET,
}


@pytest.fixture(scope="module")
def splits():
    ds = make_cluster_dataset(n_clusters=5, users_per_cluster=12, items_per_cluster=9)
    return {"loo": leave_one_out(ds), "ratio": ratio_split(ds, valid_frac=0.1, test_frac=0.3)}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("protocol", ["loo", "ratio"])
def test_streamed_ranking_equals_whole_rows(splits, name, protocol):
    split = splits[protocol]
    model = create_model(name, **MODELS[name]).fit(split.train)
    assert model.streams_scores
    for exclude_seen in (True, False):
        whole = evaluate(model, split.test, ks=(1, 5, 10), exclude_seen=exclude_seen, batch_size=7)
        # blocks of 4, 7 and 64 items: a block boundary inside a cluster, uneven blocks, one block for everything
        for block in (4, 7, 64):
            streamed = evaluate(
                model, split.test, ks=(1, 5, 10), exclude_seen=exclude_seen, batch_size=7, item_block=block
            )
            assert streamed.metrics == pytest.approx(whole.metrics, abs=1e-12), (exclude_seen, block)
            for key in ("ndcg@10", "recall@5", "mrr"):
                np.testing.assert_array_equal(streamed.per_user[key], whole.per_user[key])


def test_pop_ties_keep_the_whole_row_order(splits):
    """Pop gives many items the same score: ties must break by the lower item id across block boundaries."""
    split = splits["loo"]
    model = create_model("pop").fit(split.train)
    users = split.test.user_ids[:5]
    hists = split.test.histories(np.arange(5))
    whole = model.score_masked(users, hists)
    from recgen.eval.evaluator import _ranks_streamed
    from recgen.ops.topk import stable_topk

    targets = np.full((5, 1), 1)
    import torch

    _, top = _ranks_streamed(model.score_stream(users, hists), hists, torch.as_tensor(targets), 10, True, 3)
    np.testing.assert_array_equal(top, stable_topk(whole, 10)[1].numpy())


@pytest.mark.parametrize("name", ["ease", "multvae"])
def test_models_without_streaming_rank_whole_rows_and_bad_blocks_are_refused(splits, name):
    """EASE (its (N+1)^2 weights dwarf a batch's scores) and the models without a block scorer rank whole rows."""
    split = splits["loo"]
    model = create_model(name, **({"epochs": 1} if name == "multvae" else {})).fit(split.train)
    assert not model.streams_scores
    a = evaluate(model, split.test, ks=(10,))
    b = evaluate(model, split.test, ks=(10,), item_block=5)
    assert a.metrics == b.metrics
    with pytest.raises(ConfigError, match="item_block"):
        evaluate(model, split.test, item_block=-1)
    pop = create_model("pop").fit(split.train)
    with pytest.raises(ConfigError, match="sampled"):
        evaluate(pop, split.test, item_block=5, sampled_negatives=10)
