"""Synthetic interactions for cold items: on data whose titles carry the users' taste, content finds cold items
and the synthetic interactions let a collaborative model rank them, which it cannot do alone."""

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
