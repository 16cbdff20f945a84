"""LLaRA (hybrid item tokens) on the tiny random LLM: the projected SASRec embeddings beat text-only prompts where
titles carry no signal, save/load gives identical scores, candidates never hold an item the user has seen, the
reference's answer-matching rule, the cached candidate scoring equals scoring each full prompt."""

import numpy as np
import pytest

from recgen.data.dataset import from_columns
from recgen.data.split import make_split
from recgen.errors import DataError
from recgen.models.llm.llara import LLaRA, LLaRAConfig, Sample, draw_candidates, eval_samples, match_answer
from recgen.models.llm.llara import training_samples

WORDS = ("apple river stone cloud table garden window bridge forest candle mirror pocket silver market winter "
         "summer castle island rocket pencil jacket bottle orange purple button shadow anchor planet dragon "
         "bottom corner valley hammer ticket basket finger engine letter wallet tunnel").split()  # fmt: skip


def planted(n_users=160, n_clusters=4, per_cluster=10, length=7, seed=0):
    """Users stay inside one of four item clusters; titles are unrelated words (no cluster in the text)."""
    rng = np.random.default_rng(seed)
    users, items, ts = [], [], []
    for u in range(n_users):
        c = u % n_clusters
        for k, i in enumerate(rng.choice(per_cluster, length, replace=False)):
            users.append(f"u{u}")
            items.append(f"i{c * per_cluster + i}")
            ts.append(float(k))
    import pyarrow as pa

    n = n_clusters * per_cluster
    order = rng.permutation(n)
    table = pa.table({"item_id": [f"i{i}" for i in range(n)], "title": [WORDS[order[i]] for i in range(n)]})
    return from_columns(users, items, ts, item_table=table, name="planted-clusters")


@pytest.fixture(scope="module")
def tiny_llm(embedded_gguf, tmp_path_factory):
    pytest.importorskip("peft")
    from recgen.testing.tiny_llm import make_tiny_llm

    # two layers: picking a candidate routes a signal between prompt positions (the slot to its title, the
    # history to the slot), which one layer cannot; 0.1: attention soft enough to be tuned
    return make_tiny_llm(tmp_path_factory.mktemp("tiny-llm-2x128") / "model", init_range=0.1, layers=2, hidden=128)


@pytest.fixture(scope="module")
def setup(tiny_llm):
    from recgen.experiments.studies.llara import _titles
    from recgen.models.registry import create_model

    ds = planted()
    split = make_split(ds, "leave-one-out")
    sasrec = create_model("sasrec", embedding_dim=16, epochs=30, max_seq_len=8, seed=0).fit(split.train)
    vectors = sasrec._inference_net().item_embeddings().detach().numpy()
    titles = _titles(ds, "item")
    cfg = LLaRAConfig(n_candidates=4, history_len=5, min_history=4, train_samples=400, epochs=60, lr=3e-3,
                      max_new_tokens=4)  # fmt: skip
    seqs = [sasrec.train_history(u) for u in range(ds.users.size)]
    train = training_samples(seqs, ds.items.size - 1, cfg)
    te = split.test
    test = eval_samples(te.user_ids, te.histories(np.arange(len(te))), [te.targets(i)[0] for i in range(len(te))],
                        ds.items.size - 1, cfg, seed=7)  # fmt: skip
    return ds, vectors, titles, cfg, train, test


def fit(tiny_llm, setup, curriculum):
    import dataclasses

    from recgen.llm.hf import load_hf

    ds, vectors, titles, cfg, train, test = setup
    model, tok, _ = load_hf(str(tiny_llm))
    return LLaRA(model, tok, vectors, titles, dataclasses.replace(cfg, curriculum=curriculum)).fit(
        train, log=lambda *_: None
    )


def hr1(m, samples, hybrid):
    sc = m.candidate_scores(samples, hybrid=hybrid)
    return float(np.mean([s.candidates[int(np.argmax(r))] == s.target for r, s in zip(sc, samples, strict=True)]))


def test_hybrid_tokens_beat_text_only_where_titles_say_nothing(tiny_llm, setup):
    test = setup[-1]
    text = hr1(fit(tiny_llm, setup, "text"), test, hybrid=False)
    hybrid = hr1(fit(tiny_llm, setup, "linear"), test, hybrid=True)
    assert hybrid > 0.4 and hybrid > text + 0.15, (hybrid, text)  # chance is 0.25


def test_save_load_gives_identical_scores(tiny_llm, setup, tmp_path):
    from recgen.llm.hf import load_hf

    ds, vectors, titles, cfg, train, test = setup
    m = fit(tiny_llm, setup, "hybrid")
    before = m.candidate_scores(test[:8])
    m.save(tmp_path / "llara")
    model, tok, _ = load_hf(str(tiny_llm))
    again = LLaRA.load(tmp_path / "llara", model, tok, vectors, titles)
    np.testing.assert_allclose(again.candidate_scores(test[:8]), before, rtol=0, atol=1e-5)
    assert again.generate(test[:4]) == m.generate(test[:4])
    with pytest.raises(DataError, match="item vectors"):
        LLaRA.load(tmp_path / "llara", *load_hf(str(tiny_llm))[:2], vectors[:, :8], titles)


def test_cached_candidate_scores_equal_full_prompts(tiny_llm, setup):
    import torch

    m = fit(tiny_llm, setup, "hybrid")
    s = setup[-1][0]
    with torch.no_grad():
        full = m._answer_logprobs([s] * len(s.candidates), [m.answer_ids(c) for c in s.candidates], True)
    np.testing.assert_allclose(m.candidate_scores([s])[0], full.double().numpy(), atol=1e-4)


def test_candidates_hold_the_target_and_nothing_seen():
    rng = np.random.default_rng(0)
    for _ in range(50):
        seen = set(rng.choice(np.arange(1, 31), 10, replace=False).tolist())
        target = int(rng.integers(1, 31))
        c = draw_candidates(target, seen - {target}, 30, 20, rng)
        assert len(c) == len(set(c)) == 20 and target in c and not (set(c) - {target}) & seen
    with pytest.raises(DataError, match="unseen items"):
        draw_candidates(1, set(range(2, 25)), 30, 20, rng)


def test_training_samples_come_from_the_sequences_they_name():
    cfg = LLaRAConfig(n_candidates=3, history_len=2, min_history=2, train_samples=100)
    seqs = [np.zeros(0, dtype=np.int64), np.array([1, 2, 3, 4]), np.array([5, 6, 7])]
    out = training_samples(seqs, 10, cfg)
    assert len(out) == 3  # positions 2, 3 of user 1 and 2 of user 2
    for s in out:
        seq = seqs[s.user].tolist()
        t = seq.index(s.target)
        assert s.history == seq[max(0, t - 2) : t] and len(s.history) >= 2
        assert not (set(s.candidates) - {s.target}) & set(seq)


def test_the_reference_answer_rule():
    titles = ["Heat", "Heat and Dust", "Fargo"]
    assert match_answer(" fargo\nmore text", titles) == 2
    assert match_answer("Heat and Dust", titles) is None  # two titles contained: not valid, as the reference
    assert match_answer("Something else", titles) is None
    assert match_answer("HEAT.", titles) == 0


def test_a_prompt_puts_one_slot_after_each_title(tiny_llm, setup):
    ds, vectors, titles, cfg, train, test = setup
    from recgen.llm.hf import load_hf

    m = LLaRA(*load_hf(str(tiny_llm))[:2], vectors, titles, cfg)
    s = Sample(1, [1, 2], [3, 4, 5, 6], 4)
    hybrid, text = m.prompt_parts(s, True), m.prompt_parts(s, False)
    assert [p for p in hybrid if isinstance(p, int)] == [1, 2, 3, 4, 5, 6]
    assert not any(isinstance(p, int) for p in text)
    assert all(titles[i] in "".join(p for p in text if isinstance(p, str)) for i in (1, 2, 3, 4, 5, 6))
