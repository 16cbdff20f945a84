"""Item text as item features for SASRec and HSTU (text_items.py): the three modes, an item absent from training
scored from its text, save / load, the text sources (profiles included) and bad input."""

import numpy as np
import pyarrow as pa
import pytest
import torch

from recgen.data.augment.profiles import write_side_table
from recgen.data.dataset import from_columns
from recgen.data.split import leave_one_out
from recgen.data.text import source_texts
from recgen.errors import ConfigError, DataError
from recgen.eval.evaluator import evaluate
from recgen.models import create_model
from recgen.models.base import Recommender
from recgen.models.semantic.item_codes import codes_cache_path, item_vectors
from recgen.models.sequential.text_items import attach_text, pca_table
from recgen.testing import make_cycle_dataset

SMALL = {"embedding_dim": 32, "max_seq_len": 10, "batch_size": 16, "lr": 3e-3, "dropout": 0.1}
WORDS = "red river stone cloud ember maple orbit pixel lemon tiger violin meadow".split()


def titled_cycle(n_users=60, n_items=12, length=10, seed=0, extra=True):
    """Users walk a fixed cycle of items (the next item is always determined); each item's title is two distinct
    words. With ``extra``, one more user walks i0 i1 i2 then "x", an item nobody else has, titled as i3: after
    leave-one-out x is that user's test item and never in training."""
    base = make_cycle_dataset(n_users, n_items, length, seed)
    users = list(base.users.external(base.user_ids))
    items = list(base.items.external(base.item_ids))
    ts = list(base.timestamps)
    ids = [f"i{i}" for i in range(n_items)]
    titles = [f"{WORDS[i]} {WORDS[(i + 5) % n_items]}" for i in range(n_items)]
    if extra:
        for t, item in enumerate(["i0", "i1", "i2", "x"]):
            users.append("z")
            items.append(item)
            ts.append(1000.0 * t)
        ids.append("x")
        titles.append(titles[3])
    table = pa.table(
        {"item_id": ids, "title": titles, "genres": [["Drama"] if i % 2 else ["Comedy"] for i in range(len(ids))]}
    )
    return from_columns(users, items, ts, item_table=table, name="titled-cycle")


def fit(name, split, epochs=2, **extra):
    cfg = dict(SMALL, epochs=epochs, eval_every=epochs, **{"item_text": "title", **extra})
    return create_model(name, **cfg).fit(split.train, valid=split.valid if epochs > 2 else None)


def top1_without_twin(model, test, a, b):
    """Share of test users whose single target scores first among the items not in their history, the target's
    text twin left out: items ``a`` and ``b`` have the same title, so text-only vectors make them tie and their order
    is float rounding (which a change in the loss's summation order flipped for the 7 users whose target is i3)."""
    rows = np.arange(test.n_users)
    scores = model.score_masked(test.user_ids, test.histories(rows), timestamps=test.history_times(rows))
    targets = torch.as_tensor([int(test.targets(i)[0]) for i in rows])
    scores[rows, torch.where(targets == a, b, a)] = -torch.inf  # each target's twin out
    return (scores.argmax(dim=1) == targets).sum().item() / test.n_users


@pytest.mark.parametrize("name", ["sasrec", "hstu"])
def test_text_only_items_learn_and_score_an_item_absent_from_training(name):
    ds = titled_cycle()
    split = leave_one_out(ds)
    x, i3 = ds.items.index("x"), ds.items.index("i3")
    assert x not in set(split.train.item_ids.tolist())
    model = fit(name, split, epochs=40, text_mode="only")
    assert model.scores_unseen_items and model.net_.item_emb is None
    # the cycle is learnt from the items' text alone (x and i3 tie: each is ranked without its twin)
    assert top1_without_twin(model, split.test, x, i3) >= 0.9, model.train_log_
    # an item no one trained on has the vector its text gives: the vector of the item with its title, so the same
    # score (to the last bits, which a matrix product may round by the row's position in the table)
    table = model.net_.item_embeddings()
    assert torch.equal(table[x], table[i3])
    z = ds.users.index("z")
    hist = np.array([ds.items.index(f"i{k}") for k in range(3)])  # z's history before x
    scores = model.score(np.array([z]), [hist], None)[0]
    assert float(scores[x]) == pytest.approx(float(scores[i3]), rel=1e-12, abs=1e-12)
    assert set((torch.topk(scores[1:], 2).indices + 1).tolist()) == {x, i3}  # it ranks first after i0 i1 i2, with i3
    # the training softmax runs over the trained items only: x is no negative to push its text's region down
    rows, idx = model._softmax_catalogue(table, torch.tensor([i3]))
    assert model._seen_items.tolist() == sorted(set(split.train.item_ids.tolist())) and x not in model._seen_items
    assert len(rows) == ds.n_items - 1 and torch.equal(rows[idx], table[[i3]])
    fused = fit(name, split, text_mode="fuse")
    assert fused._seen_items is None and len(fused._softmax_catalogue(table, torch.tensor([i3]))[0]) == ds.n_items
    assert not fused.scores_unseen_items
    s2 = fused.score(np.array([z]), [hist], None)[0]
    assert s2[x] != s2[i3]  # with IDs the untrained item keeps its random ID embedding


@pytest.mark.parametrize("name", ["sasrec", "hstu"])
def test_fuse_learns_and_init_starts_from_the_text(name):
    ds = titled_cycle(extra=False)
    split = leave_one_out(ds)
    fused = fit(name, split, epochs=25, text_mode="fuse")
    assert evaluate(fused, split.test, ks=(1,)).metrics["recall@1"] >= 0.9
    names = {n for n, _ in fused.net_.named_parameters()}
    assert {"text_items.proj.weight", "text_items.proj.bias", "item_emb.weight"} <= names
    table = fused.net_.item_embeddings()
    assert torch.equal(table[0], torch.zeros_like(table[0]))  # padding stays zero
    plain = fit(name, split, item_text="none")
    batch = (torch.zeros(4, 6, dtype=torch.long), torch.zeros(4, 6))
    assert fused.flops_per_batch(batch) > plain.flops_per_batch(batch)
    init = fit(name, split, epochs=25, text_mode="init")
    assert init.net_.text_items is None  # init adds nothing to the model
    assert {n for n, _ in init.net_.named_parameters()} == {n for n, _ in plain.net_.named_parameters()}
    assert evaluate(init, split.test, ks=(1,)).metrics["recall@1"] >= 0.9


def test_init_table_is_the_scaled_principal_components():
    rng = np.random.default_rng(0)
    text = rng.normal(size=(20, 12)).astype(np.float32)
    text[7] = text[3]  # two items with one text start equal
    model = create_model("sasrec", **SMALL)
    net = model._build_net(20)
    std = float(net.item_emb.weight[1:].detach().std())
    attach_text(net, text, "init", seed=0)
    w = net.item_emb.weight.detach().numpy()
    assert np.allclose(w[1:], pca_table(text, 32, std, 0)) and np.allclose(w[8, :12], w[4, :12]) and not w[0].any()
    # 12 components, then noise: the scores' overall std is the ID initialisation's
    x = text - text.mean(0)
    scores = x @ np.linalg.svd(x, full_matrices=False)[2][:12].T
    assert np.allclose(w[1:, :12], scores * std / scores.std(), atol=1e-6)
    with pytest.raises(ValueError, match="item texts for a table"):
        attach_text(model._build_net(19), text, "fuse")


@pytest.mark.parametrize("mode", ["fuse", "only"])
def test_save_load_identical_without_the_encoder(tmp_path, mode, monkeypatch):
    ds = titled_cycle()
    split = leave_one_out(ds)
    model = fit("hstu", split, text_mode=mode)
    users = np.arange(1, 9)
    hists = [model.train_history(u) for u in users]
    before = model.score(users, hists, None)
    model.save(tmp_path / "m")
    import recgen.models.sequential.text_items as ti

    monkeypatch.setattr(ti, "text_vectors", None)  # loading must not embed again: the vectors are saved
    loaded = Recommender.load(tmp_path / "m")
    assert torch.equal(loaded.score(users, hists, None), before)
    assert ("item_emb.weight" in dict(loaded.net_.named_parameters())) == (mode == "fuse")


def test_text_sources_and_profiles(tmp_path):
    ds = titled_cycle(extra=False)
    title = source_texts(ds, "title")
    meta = source_texts(ds, "meta")
    i0 = ds.items.index("i0") - 1
    assert title[i0] == "red maple" and meta[i0] == "red maple; genres: Comedy"
    rows = [
        {
            "id": "i0",
            "status": "ok",
            "json": {"description": "A bright film.", "genres": ["Comedy"], "audience": "all"},
        },
        {"id": "i1", "status": "missing", "json": None},
    ]
    write_side_table(rows, tmp_path / "titled-cycle" / "items_profiles.parquet", "items")
    prof = source_texts(ds, "profile", tmp_path)
    assert prof[i0] == "red maple; A bright film.; genres: Comedy; audience: all"
    i1 = ds.items.index("i1") - 1
    assert prof[i1] == meta[i1]  # a missing profile: the metadata text stands in
    # TIGER's tokenizers read the same texts (embeddings=profile), and cache codes under their own key
    prof_cfg = create_model("tiger", embeddings="profile", profiles=str(tmp_path)).config
    text_cfg = create_model("tiger", embeddings="text").config
    vec = item_vectors(ds, prof_cfg)
    assert vec.shape == (ds.n_items, 384) and not np.allclose(vec[i0], item_vectors(ds, text_cfg)[i0])
    assert np.allclose(vec[i1], item_vectors(ds, text_cfg)[i1], atol=1e-6)
    assert codes_cache_path(ds, prof_cfg) != codes_cache_path(ds, text_cfg)
    with pytest.raises(DataError, match="recgen augment profiles"):
        source_texts(ds, "profile", tmp_path / "nowhere")
    write_side_table(rows[1:], tmp_path / "titled-cycle" / "items_profiles.parquet", "items")
    with pytest.raises(DataError, match="profiles no item"):
        source_texts(ds, "profile", tmp_path)
    (tmp_path / "titled-cycle" / "items_profiles.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not an item profile table"):
        source_texts(ds, "profile", tmp_path)


@pytest.mark.parametrize(
    ("name", "cfg", "msg"),
    [
        ("sasrec", {"item_text": "summary"}, "item_text must be one of"),
        ("hstu", {"item_text": "title", "text_mode": "mixed"}, "text_mode must be one of"),
        ("dreamrec", {"item_text": "title"}, "not to DreamRec"),
        ("sasrec", {"text_mode": "only"}, "needs item text; set item_text"),
        ("hstu", {"text_mode": "init"}, "needs item text; set item_text"),
    ],
)
def test_bad_text_configs_are_refused_in_one_line(name, cfg, msg):
    with pytest.raises(ConfigError, match=msg) as err:
        create_model(name, **cfg)
    assert "\n" not in str(err.value)


def test_text_items_table_reads_each_variant_against_the_model_without_text():
    from recgen.experiments.studies.text_items import text_items_table

    def res(model, text, mode, test, seeds=(0, 1, 2), **cfg):
        return {
            "schema": "recgen-bench/1",
            "dataset": "ml-100k",
            "model": model,
            "config": {"item_text": text, "text_mode": mode, **cfg},
            "seeds": list(seeds),
            "valid": {"ndcg@10": test + 0.01},
            "test": {"ndcg@10": test, "recall@10": 2 * test},
            "test_std": {"ndcg@10": 0.001, "recall@10": 0.002},
            "timings": {"fit_seconds_mean": 60.0},
            "throughput": {},
        }

    rs = [
        res("hstu", "meta", "only", 0.06),
        res("hstu", "none", "fuse", 0.08),
        res("hstu", "title", "fuse", 0.09, (0,)),
    ]
    rs.append(res("hstu", "meta", "fuse", 0.2, reason_steps=2))  # a reasoning run is not a text row
    rows = text_items_table(rs).splitlines()[2:]
    assert [r.split(" | ")[2:4] for r in rows] == [["none", "–"], ["title", "fuse"], ["meta", "only"]]
    assert "+0.0100 (+12.5%)" in rows[1] and "| 1 |" in rows[1] and "0.0900 |" in rows[1]  # one seed: no ± part
    assert "-0.0200 (-25.0%)" in rows[2] and "0.0600 ± 0.0010" in rows[2]
    # seeds merged from several devices hold a fit time per device (no overall mean): shown apart, not a KeyError
    mixed = res("sasrec", "none", "fuse", 0.05)
    del mixed["timings"]["fit_seconds_mean"]
    mixed["throughput_by_device"] = {"cuda": {"fit_seconds_mean": 248.2}, "cpu": {"fit_seconds_mean": 3067.4}}
    assert text_items_table([mixed]).splitlines()[2].endswith("| cuda 248 / cpu 3067 |")


def test_cold_start_table_reads_cold_and_warm_users_and_what_scores_unseen_items():
    from recgen.experiments.studies.text_items import is_text_items_result, text_coldstart_table

    def res(model, cfg, cold, warm, unseen):
        return {
            "schema": "recgen-bench/1",
            "dataset": "ml-100k",
            "model": model,
            "protocol": {"name": "item-cold-start"},
            "config": cfg,
            "seeds": [0, 1, 2],
            "test": {"recall@10": (cold + warm) / 2},
            "test_parts": {"cold": {"recall@10": cold, "ndcg@10": cold / 2}, "warm": {"recall@10": warm}},
            "per_seed": [{"scores_unseen_items": unseen}],
        }

    rs = [
        res("hstu", {"item_text": "meta", "text_mode": "only"}, 0.05, 0.15, True),
        res("contentknn", {}, 0.02, 0.03, True),
    ]
    rs.append(res("hstu", {}, 0.0, 0.2, False))
    assert not any(is_text_items_result(r) for r in rs)  # cold-start runs have their own table
    rows = [r.split(" | ") for r in text_coldstart_table(rs).splitlines()[2:]]
    assert [r[1:5] for r in rows] == [
        ["contentknn", "–", "–", "yes"],
        ["hstu", "none", "–", "no"],
        ["hstu", "meta", "only", "yes"],
    ]
    assert rows[2][7:10] == ["0.0500", "0.1500", "0.0250"] and rows[2][10] == "– |"
    # a user cold-start run goes to its own table, not to the item cold-start one nor the text-items one
    from recgen.experiments.studies.text_items import is_text_coldstart_result, is_user_coldstart_result

    user = {**rs[0], "protocol": {"name": "user-cold-start"}}
    assert is_user_coldstart_result(user) and not is_text_coldstart_result(user) and not is_text_items_result(user)
    assert not is_user_coldstart_result(rs[0])
