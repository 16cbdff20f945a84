"""LLM recommenders on the embedded LLM (real llama.cpp): the re-ranker's contract and parsing, TALLRec samples."""

import json

import numpy as np
import pyarrow as pa
import pytest
import torch

from recgen.cli.main import main
from recgen.data.dataset import from_columns, title_map
from recgen.data.split import leave_one_out
from recgen.errors import ConfigError
from recgen.eval.evaluator import evaluate
from recgen.models import create_model
from recgen.models.llm.llmrank import LABELS, build_prompt, parse_listwise
from recgen.models.llm.tallrec import TALLRecConfig, make_samples
from recgen.models.llm.tallrec import build_prompt as tallrec_prompt
from recgen.testing import make_cluster_dataset

FRUITS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "peach", "pear"]
TOOLS = ["hammer", "saw", "drill", "wrench", "pliers", "chisel", "level", "clamp"]


def titled_dataset():
    """Two clusters of users; fruit lovers and tool lovers, items with real words as titles."""
    base = make_cluster_dataset(n_clusters=2, users_per_cluster=12, items_per_cluster=8, seed=3)
    ext = base.items.external(base.item_ids)
    names = {f"i{c}_{j}": (FRUITS if c == 0 else TOOLS)[j] for c in range(2) for j in range(8)}
    items = sorted(names)
    table = pa.table({"item_id": items, "title": [names[i] for i in items]})
    ds = from_columns(
        base.users.external(base.user_ids), ext, base.timestamps, ratings=base.ratings, item_table=table, name="titled"
    )
    return ds


@pytest.fixture(scope="module")
def titled():
    return leave_one_out(titled_dataset())


def test_parse_listwise_maps_labels_titles_and_counts_inventions():
    titles = ["Toy Story", "Heat", "Fargo"]
    text = "B. Heat\n2) fargo\nZ. Casablanca\nThe Matrix\nA. Toy Story\nB. Heat"
    order, lines, unmatched = parse_listwise(text, titles)
    assert order == [1, 2, 0] and lines == 6 and unmatched == 2
    prompt = build_prompt(["Alien"], titles, "verbalizer")
    assert prompt.endswith("Answer:") and "C. Fargo" in prompt and "- Alien" in prompt
    assert LABELS[:3] == "ABC"


@pytest.mark.parametrize("method", ["verbalizer", "listwise"])
def test_reranker_only_reorders_the_retrievers_top_candidates(titled, embedded_gguf, method):
    cfg = {"retriever": "ease", "retriever_config": "l2=5", "llm": f"llamacpp:{embedded_gguf}", "n_candidates": 5}
    model = create_model("llmrank", method=method, max_tokens=60, **cfg).fit(titled.train)
    retriever = model.retriever_
    users = titled.test.user_ids[:4]
    for u in users:
        ext = model.users_.external(np.array([u]))[0]
        base = retriever.recommend(ext, 12)
        got = model.recommend(ext, 12)
        assert set(got.item_ids[:5]) == set(base.item_ids[:5])  # the same candidates, possibly re-ordered
        assert list(got.item_ids[5:]) == list(base.item_ids[5:])  # everything below keeps the retriever's order
    res = evaluate(model, titled.test.select(np.arange(4)), ks=(5,))
    assert 0.0 <= res.metrics["recall@5"] <= 1.0
    info = model.run_info()
    assert info["llm"]["backend"] == "llamacpp" and len(info["llm"]["model_sha256"]) == 64
    assert info["stats"]["users"] > 0
    if method == "listwise":
        assert info["stats"]["lines"] >= info["stats"]["out_of_catalogue"] >= 0


def test_reranker_shuffle_probe_changes_presentation_not_candidates(titled, embedded_gguf):
    cfg = {"retriever": "ease", "retriever_config": "l2=5", "llm": f"llamacpp:{embedded_gguf}", "n_candidates": 5}
    plain = create_model("llmrank", **cfg).fit(titled.train)
    shuffled = create_model("llmrank", shuffle_candidates=True, **cfg).fit(titled.train)
    u = titled.train.users.external(np.array([1]))[0]
    assert set(plain.recommend(u, 5).item_ids) == set(shuffled.recommend(u, 5).item_ids)


def test_bench_records_llm_identity_and_subsampled_users(capsys, titled, embedded_gguf, tmp_path):
    titled.train.save(tmp_path / "train")
    argv = ["bench", "-d", str(tmp_path / "train"), "-m", "llmrank", "--set", f"llm=llamacpp:{embedded_gguf}"]
    argv += ["--set", "retriever_config=l2=5", "--set", "n_candidates=4", "--max-eval-users", "3"]
    assert main([*argv, "--out", str(tmp_path / "res")]) == 0, capsys.readouterr().err
    (res,) = [json.loads(p.read_text()) for p in (tmp_path / "res").glob("*.json")]
    assert res["protocol"]["eval_users"] == 3
    info = res["per_seed"][0]["run_info"]
    assert info["prompt_template"].startswith("rerank-v1") and info["stats"]["users"] == 3


def test_tallrec_samples_split_users_and_label_by_rating(titled):
    cfg = TALLRecConfig(n_test=10, min_history=2)
    pool, test = make_samples(titled.train, cfg)
    assert pool and test
    assert not {s.user for s in pool} & {s.user for s in test}
    s = test[0]
    prompt = tallrec_prompt(s)
    assert s.target in prompt and prompt.endswith("### Response:")
    assert s.label in (0, 1) and all(isinstance(ok, bool) for _, ok in s.history)


def test_tallrec_more_targets_per_user_keep_the_first_draw_and_the_split(titled):
    one = make_samples(titled.train, TALLRecConfig(n_test=1000, min_history=2))
    three = make_samples(titled.train, TALLRecConfig(n_test=1000, min_history=2, targets_per_user=3))
    for a, b in zip(one, three, strict=True):
        assert {s.user for s in a} == {s.user for s in b}  # same users on each side of the split
        firsts = {}
        for s in b:
            firsts.setdefault(s.user, s)  # each user's first sample is the one-target draw
        assert [(s.user, s.target, s.label, s.history) for s in a] == [
            (s.user, s.target, s.label, s.history) for s in (firsts[x.user] for x in a)
        ]
        per_user = {}
        for s in b:
            per_user.setdefault(s.user, []).append((len(s.history), s.target))
        counts = np.bincount(titled.train.user_ids)
        assert all(len(v) == min(3, counts[u] - 2) for u, v in per_user.items())  # every position, up to 3
        assert all(len(set(v)) == len(v) for v in per_user.values())  # distinct target positions


def test_tallrec_counts_prompt_states_the_history_like_count(titled):
    _, test = make_samples(titled.train, TALLRecConfig(n_test=10, min_history=2))
    s = test[0]
    liked = sum(ok for _, ok in s.history)
    assert f"The user liked {liked} of these {len(s.history)} items." in tallrec_prompt(s, "counts")
    assert "The user liked" not in tallrec_prompt(s)
    with pytest.raises(ConfigError, match="prompt must be one of"):
        TALLRecConfig(prompt="long").validate()


def test_tallrec_item_stats_count_the_train_pool_and_leave_the_own_rating_out(titled):
    ds = titled.train
    pool, test = make_samples(ds, TALLRecConfig(n_test=1000, min_history=2, targets_per_user=2))
    title_of = {v: k for k, v in title_map(ds.item_table).items()}
    pool_users = {s.user for s in pool}
    ext_users = ds.users.external(ds.user_ids)
    ext_items = ds.items.external(ds.item_ids)
    for s in pool[:20] + test[:20]:
        item = title_of[s.target]
        rows = [
            r >= 4.0
            for u, i, r, uid in zip(ext_users, ext_items, ds.ratings, ds.user_ids, strict=True)
            if str(i) == str(item) and int(uid) in pool_users and int(uid) != s.user  # by hand: others in the pool
        ]
        assert (s.item_liked, s.item_rated) == (sum(rows), len(rows))
    s = test[0]
    line = f"Other users liked the target item in {s.item_liked} of their {s.item_rated} ratings."
    assert (line if s.item_rated else "No other user has rated the target item.") in tallrec_prompt(s, "stats")
    assert "The user liked" in tallrec_prompt(s, "stats") and "Other users" not in tallrec_prompt(s, "counts")


def test_bigrec_grounds_every_recommendation_in_the_catalogue(titled, embedded_gguf):
    import dataclasses

    model = create_model(
        "bigrec", llm=str(embedded_gguf), epochs=1, max_train_samples=8, beam=6, max_new_tokens=8, dpo_samples=3
    )
    model.fit(titled.train)
    assert model.train_info_["pairs"] == 8 and model.train_info_["steps"] == 1
    dpo_info = model.train_info_["dpo"]  # pairs only where the SFT model's own top title was wrong
    assert dpo_info["candidates"] == 3 and 0 <= dpo_info["pairs"] <= 3
    users = titled.test.user_ids[:2]
    hists = [model.train_history(int(u)) for u in users]  # recommend(user) conditions on the training history
    recs = model.recommend_batch([model.users_.external(np.array([u]))[0] for u in users], 5)
    for r, h in zip(recs, hists, strict=True):
        assert 0 < len(r) <= 5 and set(r.item_ids) <= set(model.items_.ids)
        assert not set(r.item_ids) & set(model.items_.external(h))
    assert model.run_info()["stats"]["out_of_catalogue"] == 0
    model.config = dataclasses.replace(model.config, grounding="l2")
    model.reset_stats()
    model.title_emb_ = torch.zeros(1)  # stands for title embeddings made before a DPO stage
    if model.run_dpo(3)["pairs"]:
        assert model.title_emb_ is None  # DPO changed the weights: stale title embeddings are dropped
    model.title_emb_ = None
    full = model.recommend(model.users_.external(np.array([users[0]]))[0], model.n_items_)
    assert len(full) == model.n_items_ - len(set(model.train_history(int(users[0]))))  # a full ranking
    assert model.run_info()["stats"]["generations"] == 1


def test_dpo_raises_the_margin_of_chosen_over_rejected(embedded_gguf):
    """A few DPO steps on one pair must raise log pi(chosen) - log pi(rejected) above the reference's margin."""
    import torch

    from recgen.llm.hf import load_hf
    from recgen.models.llm.tuning import DPOConfig, answer_logprobs, dpo

    model, tok, _ = load_hf(embedded_gguf)
    tok.padding_side = "right"
    prompts, chosen, rejected = ["The best fruit is"], [" mango"], [" hammer"]
    with torch.no_grad():
        before = answer_logprobs(model, tok, prompts, chosen, 64) - answer_logprobs(model, tok, prompts, rejected, 64)
    model, log = dpo(model, tok, prompts * 4, chosen * 4, rejected * 4, DPOConfig(epochs=3, batch_size=4, lr=1e-3))
    with torch.no_grad():
        after = answer_logprobs(model, tok, prompts, chosen, 64) - answer_logprobs(model, tok, prompts, rejected, 64)
    assert float(after) > float(before) + 0.5
    assert log["steps"] == 3 and log["log"][-1]["reward_accuracy"] == 1.0


def test_reranker_save_load_gives_identical_lists(titled, embedded_gguf, tmp_path):
    cfg = {"retriever": "ease", "retriever_config": "l2=5", "llm": f"llamacpp:{embedded_gguf}", "n_candidates": 5}
    model = create_model("llmrank", **cfg).fit(titled.train)
    loaded = type(model).load(model.save(tmp_path / "rr"))
    for u in titled.train.users.external(np.arange(1, 4)):
        a, b = model.recommend(u, 8), loaded.recommend(u, 8)
        assert list(a.item_ids) == list(b.item_ids)


def test_bigrec_study_evaluates_each_stage_on_the_retrievers_users(embedded_gguf, tmp_path):
    folder = titled_dataset().save(tmp_path / "titled")
    out = tmp_path / "out"
    code = main(
        ["llm", "bigrec", "-d", str(folder), "--max-eval-users", "4", "--dpo-samples", "3", "--baselines", "pop",
         "--set", f"llm={embedded_gguf}", "--set", "max_train_samples=8", "--set", "beam=5",
         "--set", "max_new_tokens=8", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    (path,) = out.glob("*__bigrec-study-u4__seed0.json")
    r = json.loads(path.read_text())
    assert r["n_test"] == 4 and r["protocol"]["eval_users"] == 4 and r["train"]["pairs"] == 8
    assert [(s["stage"], s["grounding"]) for s in r["stages"]] == [
        ("sft", "trie"), ("sft", "l2"), ("sft+dpo", "trie"), ("sft+dpo", "l2")
    ]  # fmt: skip
    for s in r["stages"]:
        assert 0.0 <= s["test"]["ndcg@10"] <= s["test"]["recall@10"] <= 1.0
        assert s["stats"]["generations"] == 4 and s["target_logprob_per_token"] < 0
        if s["grounding"] == "trie":
            assert s["stats"]["out_of_catalogue"] == 0
    assert r["train"]["dpo"]["candidates"] == 3 and set(r["retrievers"]) == {"pop"}
    assert r["model_sha256"] and r["prompt_template"] == "bigrec-v1"


def test_lora_configs_take_the_model_configs_fields_and_overrides():
    from recgen.models.llm.bigrec import BIGRecConfig
    from recgen.models.llm.tuning import DPOConfig, LoraSFTConfig

    tall = TALLRecConfig(lora_r=4, lora_dropout=0.2, lr=5e-4, epochs=3, max_length=128, seed=7)
    sft = LoraSFTConfig.from_config(tall)
    assert (sft.lora_r, sft.lora_dropout, sft.lr, sft.epochs, sft.max_length, sft.seed) == (4, 0.2, 5e-4, 3, 128, 7)
    big = BIGRecConfig(lora_r=16, dpo_lr=2e-5, dpo_epochs=2, dpo_beta=0.3)
    d = DPOConfig.from_config(big, lr=big.dpo_lr, epochs=big.dpo_epochs, beta=big.dpo_beta)
    assert (d.lora_r, d.lr, d.epochs, d.beta, d.lora_dropout) == (16, 2e-5, 2, 0.3, DPOConfig().lora_dropout)
    with pytest.raises(TypeError, match="dpo_lr"):
        DPOConfig.from_config(big, dpo_lr=1.0)


def test_reranker_prompt_opens_with_the_users_profile_where_one_was_written(titled, embedded_gguf, tmp_path):
    from recgen.data.augment.profiles import write_side_table
    from recgen.errors import DataError

    ext = list(titled.train.users.external(np.arange(1, 4)))
    rows = [
        {
            "id": ext[0],
            "status": "ok",
            "text": "{}",
            "json": {"likes": "fresh fruit", "dislikes": "tools", "summary": "Eats well."},
        },  # fmt: skip
        {"id": ext[1], "status": "missing", "error": "not valid JSON"},
        {"id": "nobody", "status": "ok", "text": "{}", "json": {"likes": "x", "dislikes": "y", "summary": "z"}},
    ]
    (tmp_path / titled.train.name).mkdir()
    write_side_table(rows, tmp_path / titled.train.name / "users_profiles.parquet", "users")
    cfg = {"retriever": "ease", "retriever_config": "l2=5", "llm": f"llamacpp:{embedded_gguf}", "n_candidates": 5}
    model = create_model("llmrank", user_profiles=str(tmp_path), **cfg).fit(titled.train)
    first = titled.train.users.index(ext[0])
    assert model.user_profiles_ == {first: "likes: fresh fruit; dislikes: tools; Eats well."}  # ok rows of known users
    assert build_prompt(["Alien"], ["Heat"], "verbalizer", "likes: x").startswith("The user's taste, summarised")
    model.reset_stats()
    for u in ext:
        model.recommend(u, 5)
    info = model.run_info()
    assert info["stats"]["users_with_profile"] == 1 and info["stats"]["users"] == 3
    assert info["prompt_template"].endswith("-profile")
    loaded = type(model).load(model.save(tmp_path / "rr"))
    assert loaded.user_profiles_ == model.user_profiles_
    assert list(loaded.recommend(ext[0], 5).item_ids) == list(model.recommend(ext[0], 5).item_ids)
    with pytest.raises(DataError, match="no user profiles there"):
        create_model("llmrank", user_profiles=str(tmp_path / "none"), **cfg).fit(titled.train)


def test_tallrec_item_like_rate_baseline_counts_per_item_when_titles_repeat():
    from recgen.eval.metrics import auc
    from recgen.experiments.studies.tallrec import baselines

    base = titled_dataset()
    ext = base.items.external(base.item_ids)
    items = sorted(set(map(str, ext)))
    titles = {i: FRUITS[int(i.split("_")[1])] for i in items}  # a fruit and a tool share each title
    table = pa.table({"item_id": items, "title": [titles[i] for i in items]})
    ds = from_columns(base.users.external(base.user_ids), ext, base.timestamps, ratings=base.ratings, item_table=table)
    # the whole history is shown, so each target sits at len(history) in its user's chronological rows
    cfg = TALLRecConfig(n_test=1000, min_history=2, history_len=1000, targets_per_user=4, test_frac=0.5)
    pool, test = make_samples(ds, cfg)
    in_pool = np.isin(ds.user_ids, [s.user for s in pool])
    liked = ds.ratings >= cfg.like_threshold
    prior = liked[in_pool].mean()
    by_item, by_title = {}, {}
    for i, ok in zip(ds.items.external(ds.item_ids[in_pool]), liked[in_pool], strict=True):
        for key, counts in ((str(i), by_item), (titles[str(i)], by_title)):
            c = counts.setdefault(key, [0, 0])
            c[0], c[1] = c[0] + ok, c[1] + 1
    order = ds.chronological_order()
    targets = []
    for s in test:  # by hand: the user's interaction right after the history shown
        rows = order[ds.user_ids[order] == s.user]
        targets.append(str(ds.items.external(ds.item_ids[[rows[len(s.history)]]])[0]))
    assert [titles[t] for t in targets] == [s.target for s in test]

    def rate(counts, keys):
        return np.array([(counts.get(k, [0, 0])[0] + 5 * prior) / (counts.get(k, [0, 0])[1] + 5) for k in keys])

    y = np.array([s.label for s in test])
    per_item, per_title = auc(y, rate(by_item, targets)), auc(y, rate(by_title, [titles[t] for t in targets]))
    assert per_item != pytest.approx(per_title)  # the data tells the two counts apart
    assert baselines(pool, test, ds, cfg)["item_like_rate_auc"] == pytest.approx(per_item)
