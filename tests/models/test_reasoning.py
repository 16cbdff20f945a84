"""ReaRec latent reasoning on SASRec and HSTU: learnability, the steps' masks, the schemes' losses and user states
against hand computation, save / load, bad configs."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recgen.data.split import leave_one_out
from recgen.errors import ConfigError
from recgen.eval.evaluator import evaluate
from recgen.models import create_model
from recgen.models.base import Recommender
from recgen.models.sequential.reasoning import reasoning_loss, reasoning_states, state_variants, user_state
from recgen.testing import make_cycle_dataset as cycle_dataset

SMALL = {"embedding_dim": 32, "max_seq_len": 10, "batch_size": 16, "lr": 3e-3, "dropout": 0.1}


def fitted(name, epochs=2, **extra):
    split = leave_one_out(cycle_dataset(n_users=30))
    return create_model(name, **SMALL, epochs=epochs, eval_every=epochs, **extra).fit(split.train), split


@pytest.mark.parametrize("name", ["sasrec", "hstu"])
@pytest.mark.parametrize("scheme", ["erl", "prl"])
def test_learns_the_next_item_with_reasoning(name, scheme):
    split = leave_one_out(cycle_dataset())
    cfg = dict(SMALL, epochs=20, eval_every=20, reason_steps=2, reason_scheme=scheme)
    model = create_model(name, **cfg).fit(split.train, valid=split.valid)
    assert model.net_.reasoner is not None
    # the PRL noisy pass ran (epochs after the warm-up): its loss terms are in the log's later epochs
    assert evaluate(model, split.test, ks=(1,)).metrics["recall@1"] >= 0.9, model.train_log_


@pytest.mark.parametrize("name", ["sasrec", "hstu"])
def test_steps_see_the_items_and_earlier_steps_only(name):
    model, _ = fitted(name, reason_steps=3)
    net = model.net_.eval()
    hists = [model.train_history(u) for u in (1, 2, 3)]
    seq = torch.as_tensor(np.stack([h[-5:] for h in hists]))
    ts = torch.arange(5, dtype=torch.float64).repeat(3, 1) * 1000.0
    wide = torch.cat([torch.zeros(3, 4, dtype=seq.dtype), seq], dim=1)  # the same histories, more left padding
    ts_wide = torch.cat([torch.zeros(3, 4, dtype=ts.dtype), ts], dim=1)
    tsa = ts if model.uses_timestamps else None
    tsb = ts_wide if model.uses_timestamps else None
    with torch.no_grad():
        x, keep = net.embed(seq)
        cache = {}
        h = net.transform(x, keep, tsa, cache)
        states = reasoning_states(net, cache, h[:, -1], 3)
        torch.testing.assert_close(reasoning_states(net, cache, h[:, -1], 3), states)  # the cache was left as it was
        xw, kw = net.embed(wide)
        cache_wide = {}
        hw = net.transform(xw, kw, tsb, cache_wide)
        states_wide = reasoning_states(net, cache_wide, hw[:, -1], 3)
        # padding is invisible to every step (left padding is masked for the reasoning queries too)
        torch.testing.assert_close(states, states_wide, rtol=1e-4, atol=1e-5)
        # the cached steps are the states of re-encoding the whole extended sequence at each step
        torch.testing.assert_close(states, reencoded(net, x, keep, tsa, 3), rtol=1e-5, atol=1e-6)
        # causal: appending a reasoning position leaves the items' states as they were
        z = net.reasoner.norm(states[:, 0] + net.reasoner.pos.weight[0])
        ext = net.transform(torch.cat([x, z[:, None]], 1), torch.cat([keep, keep[:, :1]], 1), _ext(tsa))
        torch.testing.assert_close(ext[:, :-1], h, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(states[:, 1], states[:, 2])  # each step is a new state


def _ext(ts):
    return None if ts is None else torch.cat([ts, ts[:, -1:]], 1)


def reencoded(net, x, keep, ts, steps):
    """ReaRec's states without a key / value cache: each step re-encodes the items and the earlier steps."""
    r, one = net.reasoner, torch.ones_like(keep[:, :1])
    states = [net.transform(x, keep, ts)[:, -1]]
    for k in range(steps):
        z = r.norm(states[-1] + r.pos.weight[k])
        x, keep, ts = torch.cat([x, z[:, None]], 1), torch.cat([keep, one], 1), _ext(ts)
        states.append(net.transform(x, keep, ts)[:, -1])
    return torch.stack(states, 1)


def reference_states(model, hists, steps):
    """(B, K + 1, D) states of each history (timestamps 0, 1000, ...) re-encoded without the cache, and the item
    table; both on the sphere where the model compares there (HSTU)."""
    net = model._inference_net()
    L = model.config.max_seq_len
    seq = torch.as_tensor(np.stack([np.concatenate([np.zeros(L - len(h[-L:]), int), h[-L:]]) for h in hists]))
    ts = torch.as_tensor(
        np.stack([np.concatenate([np.zeros(L - min(len(h), L)), (np.arange(len(h)) * 1000.0)[-L:]]) for h in hists])
    )
    with torch.no_grad():
        x, keep = net.embed(seq)
        st = reencoded(net, x, keep, ts if model.uses_timestamps else None, steps)
        emb = net.item_embeddings()
    if net.l2_norm:
        st, emb = F.normalize(st, dim=-1), F.normalize(emb, dim=-1)
    return st, emb


@pytest.mark.parametrize("name,scheme", [("sasrec", "erl"), ("sasrec", "prl"), ("hstu", "erl"), ("hstu", "prl")])
def test_scores_use_the_schemes_state(name, scheme):
    model, _ = fitted(name, reason_steps=2, reason_scheme=scheme)
    users = np.arange(1, 6)
    hists = [model.train_history(u) for u in users]
    scores = model.score(users, hists, [np.arange(len(h)) * 1000.0 for h in hists]).double()
    st, emb = reference_states(model, hists, 2)
    with torch.no_grad():
        want = (st.mean(1) if scheme == "erl" else st[:, -1]) @ emb.T
    # HSTU normalises the mean state: equal up to each row's positive scale, which does not change a ranking
    torch.testing.assert_close(F.normalize(scores, dim=1), F.normalize(want, dim=1), rtol=1e-6, atol=1e-9)
    assert torch.allclose(user_state(st, scheme, False), st.mean(1) if scheme == "erl" else st[:, -1])


@pytest.mark.parametrize("name", ["sasrec", "hstu"])
def test_state_variants_score_one_state_or_a_mean(name):
    """``reason_score`` names the state a trained ERL model scores with: mean{K} is the model as trained, h0 the
    encoder's state without reasoning, hk step k alone (benchmarks/reasoning_states.py scores with each)."""
    assert state_variants(2) == {"h0": (0, "erl"), "h1": (1, "prl"), "mean1": (1, "erl"), "h2": (2, "prl"),
                                 "mean2": (2, "erl")}  # fmt: skip
    model, _ = fitted(name, reason_steps=2)
    users = np.arange(1, 6)
    hists = [model.train_history(u) for u in users]
    times = [np.arange(len(h)) * 1000.0 for h in hists]
    trained = model.score(users, hists, times).double()
    st, emb = reference_states(model, hists, 2)
    for state, (k, _) in state_variants(2).items():
        got = F.normalize(model.score(users, hists, times, decode={"reason_score": state}).double(), dim=1)
        assert model.run_info() == {"reason_state": state}
        h = st[:, : k + 1].mean(1) if state.startswith("mean") or k == 0 else st[:, k]
        torch.testing.assert_close(got, F.normalize(h @ emb.T, dim=1), rtol=1e-6, atol=1e-9)
        if state == "mean2":
            torch.testing.assert_close(got, F.normalize(trained, dim=1))
    assert torch.equal(model.score(users, hists, times).double(), trained)  # the fitted config is untouched
    with pytest.raises(ConfigError, match="needs the state chosen on validation"):
        model.score(users, hists, times, decode={"reason_score": "valid"})


@pytest.mark.parametrize("name,scheme", [("sasrec", "erl"), ("hstu", "prl")])
def test_validation_chooses_the_scored_state(name, scheme, tmp_path):
    split = leave_one_out(cycle_dataset(n_users=30))
    cfg = dict(SMALL, epochs=2, eval_every=2, reason_steps=2, reason_scheme=scheme, reason_score="valid")
    model = create_model(name, **cfg).fit(split.train, valid=split.valid)
    choice = model.reason_choice_
    assert list(choice) == ["mean2" if scheme == "erl" else "h2", *(n for n in state_variants(2) if n not in
                            ("mean2" if scheme == "erl" else "h2",))]  # fmt: skip
    for state, v in choice.items():  # each state's own validation NDCG@10
        assert v == evaluate(model, split.valid, ks=(10,), decode={"reason_score": state}).metrics["ndcg@10"]
    best = max(choice.values())
    assert model.reason_state_ == next(n for n, v in choice.items() if v == best)  # the first best
    users = np.arange(1, 8)
    hists = [model.train_history(u) for u in users]
    scores = model.score(users, hists, None)  # (run_info reports the last scoring call's state)
    assert model.run_info() == {"reason_state": model.reason_state_, "valid_by_state": choice}
    assert torch.equal(scores, model.score(users, hists, None, decode={"reason_score": model.reason_state_}))
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.reason_state_ == model.reason_state_ and torch.equal(loaded.score(users, hists, None), scores)
    with pytest.raises(ConfigError, match="pass valid to fit"):
        create_model(name, **cfg).fit(split.train)


def test_a_finished_run_is_rescored_under_another_state(tmp_path):
    """``reason_score`` is read only when recommending: a run folder trained under one value resumes (trains
    nothing more) under another, and validation then chooses among the states of the same weights."""
    split = leave_one_out(cycle_dataset(n_users=30))
    cfg = dict(SMALL, epochs=2, eval_every=2, reason_steps=2)
    first = create_model("sasrec", **cfg).configure_run(tmp_path, resume=False).fit(split.train, valid=split.valid)
    again = create_model("sasrec", **cfg, reason_score="valid").configure_run(tmp_path, resume=True)
    again.fit(split.train, valid=split.valid)
    assert again.resumed_from_epoch_ == 2 and again.reason_state_ in state_variants(2)
    users = np.arange(1, 8)
    hists = [first.train_history(u) for u in users]
    assert torch.equal(again.score(users, hists, None, decode={"reason_score": "trained"}), first.score(users, hists))
    with pytest.raises(ConfigError, match="different config: reason_kl"):  # a training field still must match
        create_model("sasrec", **cfg, reason_kl=0.1).configure_run(tmp_path, resume=True).fit(split.train)


def test_erl_and_prl_losses_by_hand():
    torch.manual_seed(0)
    b, k, d, n = 4, 2, 8, 11
    states = torch.randn(b, k + 1, d, dtype=torch.float64)
    emb = torch.randn(n, d, dtype=torch.float64)
    t = torch.tensor([0, 3, 7, 10])

    class Cfg:
        reason_scheme, reason_kl, reason_temp_decay = "erl", 0.3, 5.0

    tau = 0.5
    got = reasoning_loss(states, emb, t, Cfg, tau, False)
    ce = [F.cross_entropy(states[:, j] @ emb.T / tau, t) for j in range(k + 1)]
    logp = [F.log_softmax(states[:, j] @ emb.T / tau, -1) for j in range(k + 1)]
    kl = [
        (logp[j].exp() * (logp[j] - logp[i])).sum(-1)  # KL(p_j || p_i) per user
        for i in range(k + 1)
        for j in range(k + 1)
        if i != j
    ]
    torch.testing.assert_close(got, ce[1] + ce[2] - 0.3 * torch.stack(kl).mean())
    Cfg.reason_scheme = "prl"
    got = reasoning_loss(states, emb, t, Cfg, tau, False)
    want = F.cross_entropy(states[:, 1] @ emb.T / (tau * 5.0), t) + ce[2]  # step 1 at tau * 5 ** (2 - 1)
    torch.testing.assert_close(got, want)
    noisy = states + 0.01 * torch.randn_like(states)
    with_cl = reasoning_loss(states, emb, t, Cfg, tau, False, noisy)
    cl = sum(F.cross_entropy(noisy[:, j] @ states[:, j].T / tau, torch.arange(b)) for j in (1, 2)) / 2
    torch.testing.assert_close(with_cl, want + cl)


def test_prl_noise_starts_after_the_warm_up():
    model, split = fitted("sasrec", reason_steps=2, reason_scheme="prl", reason_warmup=2)
    model.net_.eval()  # no dropout: the loss differs only by the noisy pass
    seqs, tss, _ = model._training_arrays()
    draws = torch.rand(8, seqs.shape[1] - 1, generator=torch.Generator().manual_seed(0))
    batch = (torch.as_tensor(seqs[:8]), torch.as_tensor(tss[:8]), draws)  # the same prefixes in every call
    model._epoch = 2
    torch.manual_seed(1)
    warm = model._loss(batch)[0]
    model._epoch = 3
    after = model._loss(batch)[0]
    quiet = create_model("sasrec", **SMALL, reason_steps=2, reason_scheme="prl", reason_noise=0.0)
    quiet.net_, quiet.n_items_, quiet._epoch = model.net_, model.n_items_, 3
    assert torch.equal(quiet._loss(batch)[0], warm) and after > warm


def test_save_load_and_no_extra_parameters_without_reasoning(tmp_path):
    model, _ = fitted("hstu", reason_steps=2, reason_scheme="erl")
    users = np.arange(1, 8)
    hists = [model.train_history(u) for u in users]
    before = model.score(users, hists, None)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert torch.equal(loaded.score(users, hists, None), before)
    plain, _ = fitted("hstu")
    names = {n for n, _ in plain.net_.named_parameters()}
    assert not any("reasoner" in n for n in names)
    assert {n for n, _ in model.net_.named_parameters()} - names == {
        "reasoner.pos.weight",
        "reasoner.norm.weight",
        "reasoner.norm.bias",
    }
    batch = (torch.zeros(4, 6, dtype=torch.long), torch.zeros(4, 6))
    assert model.flops_per_batch(batch) > plain.flops_per_batch(batch)


@pytest.mark.parametrize(
    "name,bad,match",
    [
        ("sasrec", {"reason_steps": -1}, "reason_steps must be >= 0"),
        ("sasrec", {"reason_steps": 2, "reason_scheme": "cot"}, "reason_scheme must be one of"),
        ("hstu", {"reason_steps": 2, "loss": "bce"}, "needs loss='ce'"),
        ("sasrec", {"reason_temp_decay": 0}, "reason_temp_decay must be > 0"),
        ("hstu", {"reason_scheme": "prl"}, "needs reasoning steps; set reason_steps"),
        ("dreamrec", {"reason_steps": 1}, "applies to sasrec and hstu"),
        ("sasrec", {"reason_steps": 2, "reason_score": "h3"}, r"reason_score must be one of \['trained', 'valid'"),
        ("hstu", {"reason_score": "valid"}, r"one of \['trained', 'h0'\] with reason_steps=0"),
    ],
)
def test_bad_reasoning_config(name, bad, match):
    with pytest.raises(ConfigError, match=match):
        create_model(name, **bad)


def test_reasoning_table_marks_the_k_chosen_on_validation():
    from recgen.experiments.studies.reasoning import chosen_k, reasoning_table

    def res(k, scheme, valid, test, ups):
        return {
            "schema": "recgen-bench/1",
            "dataset": "ml-100k",
            "model": "sasrec",
            "config": {"reason_steps": k, "reason_scheme": scheme, "max_seq_len": 50},
            "seeds": [0, 1, 2],
            "valid": {"ndcg@10": valid},
            "test": {"ndcg@10": test, "recall@10": 2 * test},
            "test_std": {"ndcg@10": 0.001, "recall@10": 0.002},
            "timings": {"fit_seconds_mean": 100.0 * (k + 1)},
            "throughput": {"eval_users_per_second": ups},
        }

    rs = [res(0, "erl", 0.08, 0.070, 1000.0), res(1, "erl", 0.09, 0.060, 600.0), res(2, "erl", 0.085, 0.080, 400.0)]
    assert chosen_k(rs) == {("ml-100k", "sasrec", "erl"): 1}  # validation decides, not test
    unfinished = dict(res(3, "erl", 0.2, 0.09, 300.0), seeds=[0])
    assert chosen_k([*rs, unfinished]) == {("ml-100k", "sasrec", "erl"): 1}  # fewer seeds do not compete
    table = reasoning_table(rs).splitlines()
    assert len(table) == 5
    assert table[3].split(" | ")[2:5] == ["ERL", "1", "✓"]
    assert "-0.0100 (-14.3%)" in table[3] and "600 (x0.60)" in table[3]
    assert table[4].split(" | ")[4] == "" and "+0.0100 (+14.3%)" in table[4]
    assert [row.split(" | ")[5] for row in table[2:]] == ["–", "mean1", "mean2"]  # the scheme's state
    mixed = [dict(rs[0], throughput={}), rs[1]]  # a plain row whose seeds ran on different devices
    mixed_table = reasoning_table(mixed)
    assert mixed_table.splitlines()[2].endswith("| – (–) |") and "600 (–)" in mixed_table


def test_reasoning_table_rows_scored_by_validations_state_and_named_states():
    from recgen.experiments.studies.reasoning import chosen_k, reasoning_table

    def res(k, valid, test, score="trained", per_seed=()):
        return {
            "schema": "recgen-bench/1",
            "dataset": "beauty",
            "model": "hstu",
            "config": {"reason_steps": k, "reason_scheme": "erl", "reason_score": score},
            "seeds": [0, 1],
            "valid": {"ndcg@10": valid},
            "test": {"ndcg@10": test, "recall@10": 2 * test},
            "test_std": {"ndcg@10": 0.001, "recall@10": 0.002},
            "timings": {"fit_seconds_mean": 100.0},
            "throughput": {"eval_users_per_second": 500.0},
            "per_seed": list(per_seed),
        }

    def seed(state, h0_test):
        variant = {"test": {"ndcg@10": h0_test, "recall@10": 0.1}, "eval_users_per_second": 1000.0}
        return {"run_info": {"reason_state": state}, "test_variants": {"reason_score=h0": variant}}

    rs = [
        res(0, 0.05, 0.050),
        res(2, 0.04, 0.045),
        res(2, 0.06, 0.055, "valid", [seed("h0", 0.054), seed("mean1", 0.058)]),
    ]
    assert chosen_k(rs) == {("beauty", "hstu", "erl"): 2}  # the re-scored runs do not compete for K
    table = reasoning_table(rs).splitlines()
    assert len(table) == 6
    cells = [row.split(" | ") for row in table[2:]]
    assert [c[5] for c in cells] == ["–", "mean2", "valid's choice: h0 x1, mean1 x1", "h0 (same weights)"]
    assert cells[2][4] == "" and "+0.0050 (+10.0%)" in table[4]
    # the named state's row: the seeds' mean and spread of its test figures, no validation, its own users/s ratio
    assert cells[3][7:10] == ["–", "0.1000 ± 0.0000", "0.0560 ± 0.0028"] and "1000 (x2.00)" in table[5]


def test_k_runs_only_rescored_by_validation_compete_with_their_trained_states_validation():
    from recgen.experiments.studies.reasoning import chosen_k, reasoning_table

    def res(k, valid_by_state, score="valid"):
        seeds = [{"run_info": {"reason_state": "h0", "valid_by_state": v}, "test_variants": {}} for v in valid_by_state]
        return {
            "schema": "recgen-bench/1",
            "dataset": "ml-100k",
            "model": "sasrec",
            "config": {"reason_steps": k, "reason_scheme": "prl", "reason_score": score},
            "seeds": list(range(len(seeds))),
            "valid": {"ndcg@10": max(max(v.values()) for v in valid_by_state)},
            "test": {"ndcg@10": 0.05, "recall@10": 0.1},
            "test_std": {"ndcg@10": 0.001, "recall@10": 0.002},
            "timings": {"fit_seconds_mean": 100.0},
            "throughput": {"eval_users_per_second": 500.0},
            "per_seed": seeds,
        }

    # K = 1's h1 averages 0.07 on validation, K = 2's h2 0.06: h0 (0.09 / 0.10, the rows' valid figure) is no K's
    k1 = res(1, [{"h0": 0.09, "h1": 0.08}, {"h0": 0.09, "h1": 0.06}])
    k2 = res(2, [{"h0": 0.10, "h2": 0.06}, {"h0": 0.10, "h2": 0.06}])
    assert chosen_k([k1, k2]) == {("ml-100k", "sasrec", "prl"): 1}
    rows = reasoning_table([k1, k2]).splitlines()[2:]
    assert [row.split(" | ")[3:5] for row in rows] == [["1", "✓"], ["2", ""]]
    assert chosen_k([k1, res(3, [{"h0": 0.1}, {"h0": 0.1}])]) == {("ml-100k", "sasrec", "prl"): 1}  # h3 unrecorded
    # where the K has its own trained-scored run, that run's validation counts and carries the mark
    own = dict(res(2, [{"h0": 0.1}, {"h0": 0.1}], "trained"), valid={"ndcg@10": 0.2})
    assert chosen_k([k1, k2, own]) == {("ml-100k", "sasrec", "prl"): 2}
    weaker = dict(own, valid={"ndcg@10": 0.01})  # two trained-scored runs of one K: the better one counts
    assert chosen_k([k1, k2, own, weaker]) == chosen_k([k1, k2, weaker, own]) == {("ml-100k", "sasrec", "prl"): 2}
    marks = [row.split(" | ")[4] for row in reasoning_table([k1, k2, own]).splitlines()[2:]]
    assert marks == ["", "✓", ""]


@pytest.mark.parametrize("name", ["sasrec", "hstu"])
def test_each_row_reasons_after_a_drawn_prefix_encoded_as_at_inference(name):
    model, _ = fitted(name, reason_steps=1)
    net = model.net_.eval()
    seqs, tss, _ = model._training_arrays()
    seq, ts = torch.as_tensor(seqs[:6]), torch.as_tensor(tss[:6])
    inputs, targets = seq[:, :-1], seq[:, 1:]
    draws = torch.rand(inputs.shape, generator=torch.Generator().manual_seed(3))
    ts_in = ts[:, :-1] if model.uses_timestamps else None
    with torch.no_grad():
        states, target, _ = model._reasoning_sample(inputs, targets, ts_in, None, draws)
        for b in range(len(seq)):
            real = ((inputs[b] > 0) & (targets[b] > 0)).nonzero()[:, 0]
            end = int(real[draws[b, real].argmax()])  # the drawn position: the largest draw among real ones
            assert int(target[b]) == int(targets[b, end])  # the item after the prefix
            prefix = inputs[b, : end + 1][None]
            pts = ts_in[b, : end + 1][None] if ts_in is not None else None
            alone = net.encode(prefix, pts)[:, -1]  # the prefix encoded on its own, as a ranking request would be
            torch.testing.assert_close(states[b, 0], alone[0], rtol=1e-4, atol=1e-5)
    # with every sample a prefix (the reference's setting) the reasoning sits at each row's last position
    pmodel, _ = fitted(name, reason_steps=1, train_prefixes=True)
    pnet = pmodel.net_.eval()
    with torch.no_grad():
        cache = {}
        h = pnet.transform(*pnet.embed(inputs), ts_in, cache)
        states, target, _ = pmodel._reasoning_sample(inputs, targets, ts_in, h, draws, cache)
    assert torch.equal(target, targets[:, -1]) and torch.equal(states[:, 0], h[:, -1])


def test_states_table_reads_each_state_against_h0():
    from recgen.experiments.studies.reasoning import reasoning_states_table

    def row(state, test):
        return {"state": state, "valid": {"ndcg@10": test + 0.01}, "test": {"ndcg@10": test, "recall@10": 2 * test}}

    r = {
        "schema": "recgen-reasoning-states/1",
        "dataset": "beauty",
        "model": "sasrec",
        "config": {"reason_steps": 1, "seed": 0},
        "best_epoch": 30,
        "rows": [row("h0", 0.05), row("h1", 0.04), row("mean1", 0.045)],
    }
    table = reasoning_states_table([r]).splitlines()
    assert len(table) == 5
    assert table[2].split(" | ")[5:] == ["h0", "0.0600", "0.1000", "0.0500", "– |"]
    assert table[3].endswith("| 0.0400 | -0.0100 (-20.0%) |") and table[4].endswith("-0.0050 (-10.0%) |")
