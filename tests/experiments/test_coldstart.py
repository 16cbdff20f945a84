"""Synthetic interactions for cold items: on data whose titles carry the users' taste, content finds cold items
and the synthetic interactions let a collaborative model rank them, which it cannot do alone."""

import numpy as np
import pyarrow as pa

from recgen.data.dataset import from_columns
from recgen.experiments.studies import coldstart
from recgen.testing import make_cluster_dataset

TOPICS = [
    "space rocket launch",
    "italian cooking recipe",
    "football world cup",
    "jazz piano music",
    "medieval castle history",
    "tropical beach holiday",
]


def test_synthetic_interactions_let_ease_rank_cold_items(monkeypatch, tmp_path):
    base = make_cluster_dataset(n_clusters=6, users_per_cluster=25, items_per_cluster=30, seed=3)
    ids = list(base.items.ids)
    titles = [f"{TOPICS[int(i.split('_')[0][1:])]} {i.split('_')[1]}" for i in ids]  # ids are "i<c>_<k>"
    ds = from_columns(base.users.external(base.user_ids), base.items.external(base.item_ids), base.timestamps,
                      item_table=pa.table({"item_id": ids, "title": titles}), name="topics")  # fmt: skip
    monkeypatch.setattr(coldstart, "load_dataset", lambda name, **kw: ds)
    r = coldstart.run_cold_start_study("topics", models=["ease"], filters=["none"], per_item=10, cold_frac=0.25,
                                       out_dir=str(tmp_path), log=lambda m: None)  # fmt: skip
    rows = {(x["model"], x["augmentation"]): x["metrics"] for x in r["rows"]}
    assert r["protocol"]["cold_test_users"] > 10
    alone = rows[("ease", "none")]["cold"]["recall@10"]  # no interaction: EASE scores every cold item 0
    assert rows[("contentknn", "none (content only)")]["cold"]["recall@10"] > alone + 0.3
    assert rows[("ease", "synthetic (none filter)")]["cold"]["recall@10"] > alone + 0.3
    assert rows[("ease", "synthetic (none filter)")]["warm"]["recall@10"] > 0.5  # warm items stay ranked
    synthetic = next(x for x in r["rows"] if x["augmentation"] == "synthetic (none filter)")["synthetic"]
    assert synthetic["per_cold_item"] == 10 and synthetic["acceptance_rate"] == 1.0


def test_llm_filter_asks_each_proposed_user_once_and_keeps_only_accepted_ones(embedded_llm):
    from recgen.models.classic.contentknn import ContentKNN

    base = make_cluster_dataset(n_clusters=3, users_per_cluster=6, items_per_cluster=6, seed=4)
    ids = list(base.items.ids)
    titles = [f"{TOPICS[int(i.split('_')[0][1:])]} {i.split('_')[1]}" for i in ids]
    ds = from_columns(base.users.external(base.user_ids), base.items.external(base.item_ids), base.timestamps,
                      item_table=pa.table({"item_id": ids, "title": titles}), name="topics")  # fmt: skip
    cold = np.asarray([ds.items.index(x) for x in ("i0_1", "i1_2", "i2_3")])
    emb = ContentKNN().fit(ds).emb_
    pairs, stats = coldstart.synthetic_pairs(ds, emb, cold, 2, "llm", llm=embedded_llm, candidates=2)
    proposed_by_item = {}
    none_pairs, _ = coldstart.synthetic_pairs(ds, emb, cold, 4, "none")  # the same ranking, the first 2 x 2 users
    for u, i in none_pairs:
        proposed_by_item.setdefault(i, []).append(u)
    assert stats["proposed"] == 12 and stats["llm_decisions"] == 12  # one question per proposed (user, item)
    assert 0 <= stats["accepted"] == len(pairs) <= 6
    assert all(u in proposed_by_item[i] for u, i in pairs)
