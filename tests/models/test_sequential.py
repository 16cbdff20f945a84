"""SASRec / HSTU / the trainer: learnability on a known next item, every loss, resume equals uninterrupted."""

import dataclasses

import pytest
import torch

from recgen.data.split import leave_one_out
from recgen.errors import ConfigError
from recgen.eval.evaluator import evaluate
from recgen.models import create_model
from recgen.models.base import Recommender
from recgen.testing import make_cycle_dataset as cycle_dataset

SMALL = {
    "embedding_dim": 32,
    "max_seq_len": 10,
    "batch_size": 16,
    "epochs": 30,
    "eval_every": 5,
    "lr": 3e-3,
    "dropout": 0.1,
    "patience": 3,
}


@pytest.mark.parametrize(
    "name,loss", [("sasrec", "ce"), ("sasrec", "sampled"), ("sasrec", "bce"), ("hstu", "ce"), ("hstu", "sampled")]
)
def test_learns_the_next_item(name, loss):
    split = leave_one_out(cycle_dataset())
    extra = {"n_negatives": 5} if loss == "sampled" else {}
    model = create_model(name, loss=loss, **SMALL, **extra).fit(split.train, valid=split.valid)
    res = evaluate(model, split.test, ks=(1,))
    assert res.metrics["recall@1"] >= 0.9, (name, loss, res.metrics["recall@1"], model.train_log_)


def test_resume_matches_uninterrupted(tmp_path):
    split = leave_one_out(cycle_dataset(n_users=40))
    cfg = dict(SMALL, epochs=6, eval_every=2, patience=10)
    full = create_model("sasrec", **cfg).configure_run(tmp_path / "full")
    full.fit(split.train, valid=split.valid)

    class Interrupt(Exception):
        pass

    def stop_after_3(state):
        if state.epoch == 3:
            raise Interrupt

    part = create_model("sasrec", **cfg).configure_run(tmp_path / "part", on_epoch_end=stop_after_3)
    with pytest.raises(Interrupt):
        part.fit(split.train, valid=split.valid)
    assert (tmp_path / "part" / "last.pt").exists()
    resumed = create_model("sasrec", **cfg).configure_run(tmp_path / "part", resume=True)
    resumed.fit(split.train, valid=split.valid)
    assert [e["loss"] for e in resumed.train_log_] == [e["loss"] for e in full.train_log_]
    a = evaluate(full, split.test).metrics
    b = evaluate(resumed, split.test).metrics
    assert a == b
    assert resumed.best_epoch_ == full.best_epoch_
    assert resumed.resumed_from_epoch_ == 3 and full.resumed_from_epoch_ == 0
    assert not list((tmp_path / "part").glob("*.tmp-*"))
    # a finished run resumed trains no further
    again = create_model("sasrec", **cfg).configure_run(tmp_path / "full", resume=True)
    again.fit(split.train, valid=split.valid)
    assert again.train_log_ == full.train_log_ and again.resumed_from_epoch_ == 6
    # another config is refused, naming the field, before any weights are touched
    other = create_model("sasrec", **dict(cfg, lr=1e-2)).configure_run(tmp_path / "part", resume=True)
    with pytest.raises(ConfigError, match=r"different config: lr \(0.003 there, 0.01 now\)"):
        other.fit(split.train, valid=split.valid)


def test_speed_figures_and_bad_config():
    split = leave_one_out(cycle_dataset(n_users=20))
    m = create_model("sasrec", **dict(SMALL, epochs=2)).fit(split.train)
    assert m.train_speed_["train_samples_per_second"] > 0 and m.train_speed_["achieved_gflops"] > 0
    assert m.non_embedding_parameters() > 0
    with pytest.raises(ConfigError, match="n_heads must divide"):
        create_model("sasrec", embedding_dim=30, n_heads=4)
    with pytest.raises(ConfigError, match="loss must be one of"):
        create_model("hstu", loss="hinge")


def test_device_config_is_checked():
    for name in ("sasrec", "hstu"):
        with pytest.raises(ConfigError, match="device"):
            create_model(name, device="tpu")
    with pytest.raises(ConfigError, match="CPU only"):
        create_model("dreamrec", device="cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour of a machine without a GPU")
@pytest.mark.parametrize("name", ["sasrec", "hstu"])
def test_gpu_device_without_a_gpu_is_a_clear_error_and_a_gpu_model_loads_on_the_cpu(tmp_path, name):
    split = leave_one_out(cycle_dataset(n_users=20))
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        create_model(name, **dict(SMALL, epochs=1, device="cuda")).fit(split.train)
    m = create_model(name, **dict(SMALL, epochs=1, device="auto")).fit(split.train)
    assert m.net_.item_emb.weight.device.type == "cpu"
    m.config = dataclasses.replace(m.config, device="cuda")  # as a model trained on a GPU is saved
    m.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.config.device == "cuda" and loaded.net_.item_emb.weight.device.type == "cpu"
    users, hists = split.test.user_ids, split.test.histories(slice(None))
    ts = split.test.history_times(slice(None))
    assert torch.equal(loaded.score(users, hists, ts), m.score(users, hists, ts))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a GPU machine)")
@pytest.mark.parametrize("name", ["sasrec", "hstu"])
def test_trains_on_a_gpu_and_loads_on_the_cpu(tmp_path, name):
    split = leave_one_out(cycle_dataset())
    model = create_model(name, **dict(SMALL, device="cuda")).fit(split.train, valid=split.valid)
    assert model.net_.item_emb.weight.device.type == "cuda" and model.trainer_.autocast
    assert evaluate(model, split.test, ks=(1,)).metrics["recall@1"] >= 0.9, model.train_log_
    model.save(tmp_path / "m")
    users, hists = split.test.user_ids, split.test.histories(slice(None))
    ts = split.test.history_times(slice(None))
    gpu = model.score(users, hists, ts)
    assert gpu.device.type == "cpu"
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.net_.item_emb.weight.device.type == "cpu"
    assert torch.equal(loaded.score(users, hists, ts).argmax(1), gpu.argmax(1))


def test_train_prefixes_makes_every_prefix_a_sample_and_still_learns():
    import numpy as np

    split = leave_one_out(cycle_dataset(n_users=30))
    cfg = {**SMALL, "max_seq_len": 4, "epochs": 1}
    plain = create_model("sasrec", **cfg)
    plain.fit(split.train)
    aug = create_model("sasrec", **cfg, train_prefixes=True)
    aug.fit(split.train)
    seqs, _, lengths = plain._training_arrays()
    aseqs, _, alengths = aug._training_arrays()
    hist = [aug.train_history(u) for u in range(1, aug.n_users_ + 1)]
    assert len(seqs) == sum(len(h) >= 2 for h in hist)
    assert len(aseqs) == sum(max(len(h) - 1, 0) for h in hist)  # one sample per prefix of length >= 2
    # the samples of user 1: its prefixes in order, each cut to the last max_seq_len + 1 items, left-padded
    h = hist[0]
    for j, end in enumerate(range(2, len(h) + 1)):
        want = h[max(0, end - 5) : end]
        assert alengths[j] == len(want) and list(aseqs[j][5 - len(want) :]) == list(want)
        assert not aseqs[j][: 5 - len(want)].any()
    assert list(seqs[0][-5:]) == list(h[-5:]) and np.array_equal(aseqs[len(h) - 2], seqs[0])
    # a prefix's loss is at its last position only (RecBole's definition): one term per sample, the targets of the
    # prefixes are the items after each prefix, each once
    batch = (torch.as_tensor(aseqs), torch.zeros(aseqs.shape))
    loss, n, terms = aug._loss(batch)
    assert n == terms == len(aseqs)
    aug.net_.eval()
    h_last = aug.net_.encode(batch[0][:, :-1], None)[:, -1]
    want = torch.nn.functional.cross_entropy(h_last @ aug.net_.item_embeddings()[1:].T, batch[0][:, -1] - 1)
    torch.testing.assert_close(aug._loss(batch)[0], want, rtol=1e-5, atol=1e-6)
    model = create_model("sasrec", **{**SMALL, "epochs": 10}, train_prefixes=True).fit(split.train, valid=split.valid)
    assert evaluate(model, split.test, ks=(1,)).metrics["recall@1"] >= 0.9


def test_time_budget_stops_after_the_epoch_that_spends_it_and_validates_that_epoch():
    split = leave_one_out(cycle_dataset(n_users=20))
    # eval_every beyond the run: only the budget's stop can trigger the validation that chooses the weights
    m = create_model("sasrec", **dict(SMALL, epochs=20, eval_every=50, time_budget=1e-6))
    m.fit(split.train, valid=split.valid)
    assert len(m.train_log_) == 1 and "valid_ndcg@10" in m.train_log_[0]
    assert m.stop_reason_ == "time_budget" and m.best_epoch_ == 1
    full = create_model("sasrec", **dict(SMALL, epochs=2, eval_every=1, patience=5)).fit(split.train, valid=split.valid)
    assert full.stop_reason_ == "" and len(full.train_log_) == 2  # ran to the last epoch: no stop reason
    with pytest.raises(ConfigError, match="time_budget"):
        create_model("sasrec", time_budget=-1)


def test_fused_full_softmax_ce_equals_one_matrix():
    """The CPU loss (logits made in blocks and never kept, the backward pass fused) against autograd over one
    (P, N) matrix: same value and gradients."""
    from recgen.models.sequential.next_item import full_softmax_ce
    from recgen.ops.softmax_ce import ROWS

    g = torch.Generator().manual_seed(0)
    p = 2 * ROWS + 37  # three blocks, the last one short
    h0, e0 = torch.randn(p, 16, generator=g), torch.randn(300, 16, generator=g)
    t = torch.randint(0, 300, (p,), generator=g)
    grads = []
    for fn in (full_softmax_ce, lambda h, e, t: torch.nn.functional.cross_entropy(h @ e.T, t)):
        h, e = h0.clone().requires_grad_(), e0.clone().requires_grad_()
        loss = fn(h, e, t)
        loss.backward()
        grads.append((loss.detach(), h.grad, e.grad))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    h = h0.clone().requires_grad_()
    (full_softmax_ce(h, e0, t) * 0.3).backward()  # a factor on the output reaches the gradient taken in forward
    torch.testing.assert_close(h.grad, 0.3 * grads[1][1], rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # no gradient asked for: the value alone
        torch.testing.assert_close(full_softmax_ce(h0, e0, t), grads[1][0], rtol=1e-5, atol=1e-6)
    h = h0.to(torch.bfloat16).requires_grad_()  # a bf16 query (autocast) against fp32 items: computed in fp32
    low = full_softmax_ce(h, e0, t)
    low.backward()
    assert h.grad.dtype == torch.bfloat16 and abs(low.item() - grads[1][0].item()) < 0.02 * grads[1][0].item()


def pairwise_step_diversity(x, emb):
    """ERL's diversity term as the reference writes it: every ordered pair's KL(p_j || p_i), p_i detached."""
    logp = torch.log_softmax(x @ emb.T, dim=-1)  # (B, S, N)
    kl = (logp.exp()[:, None] * (logp[:, None] - logp.detach()[:, :, None])).sum(-1)  # [b, i, j]
    off = ~torch.eye(x.shape[1], dtype=torch.bool)
    return kl[:, off].mean()


@pytest.mark.parametrize("rows", [1, 5, 64])
def test_fused_step_diversity_equals_the_pairwise_form(rows):
    """ERL's diversity term summed over i first, computed with its gradient a block of rows at a time: the value
    and both gradients of the reference's pairwise form (float64, blocks of 1 to all rows), a bf16 input computed
    in float32, and no gradient work where none is asked for."""
    from recgen.ops.softmax_ce import fused_step_diversity

    g = torch.Generator().manual_seed(0)
    x0, e0 = (
        3 * torch.randn(13, 4, 8, generator=g, dtype=torch.float64),
        torch.randn(50, 8, generator=g, dtype=torch.float64),
    )
    out = []
    for fn in (lambda x, e: fused_step_diversity(x, e, rows=rows), pairwise_step_diversity):
        x, e = x0.clone().requires_grad_(), e0.clone().requires_grad_()
        loss = 0.7 * fn(x, e)  # a factor on the output reaches both gradients
        loss.backward()
        out.append((loss.detach(), x.grad, e.grad))
    for a, b in zip(*out, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert out[0][0] > 0  # KL of distinct distributions
    x = x0.transpose(0, 1).contiguous().transpose(0, 1).requires_grad_()  # the same values, strided (not contiguous)
    fused_step_diversity(x, e0, rows=rows).mul(0.7).backward()
    torch.testing.assert_close(x.grad, out[1][1], rtol=1e-10, atol=1e-12)
    low = fused_step_diversity(x0.to(torch.bfloat16), e0.float())
    assert low.dtype == torch.float32 and abs(low.item() - out[1][0].item() / 0.7) < 0.05 * out[1][0].item()
    with torch.no_grad():
        torch.testing.assert_close(fused_step_diversity(x0, e0, rows=rows), out[1][0] / 0.7)
    with pytest.raises(ValueError, match="at least 2 states"):
        fused_step_diversity(x0[:, :1], e0)


@pytest.mark.parametrize("rows", [1, 5, 64])
def test_fused_erl_loss_equals_its_terms(rows):
    """ERL's loss on the steps in one pass over the logits: the value and both gradients of the steps' separate
    cross-entropies minus kl times the pairwise diversity term (float64, blocks of 1 to all rows), kl = 0 (the
    cross-entropies alone), a bf16 input, no-grad, and too few states."""
    from recgen.ops.softmax_ce import fused_erl_loss

    g = torch.Generator().manual_seed(1)
    x0 = 3 * torch.randn(13, 4, 8, generator=g, dtype=torch.float64)
    e0 = torch.randn(50, 8, generator=g, dtype=torch.float64)
    t = torch.randint(0, 50, (13,), generator=g)

    def separate(x, e, kl):
        ce = sum(torch.nn.functional.cross_entropy(x[:, k] @ e.T, t) for k in range(1, x.shape[1]))
        return ce - kl * pairwise_step_diversity(x, e)

    for kl in (0.05, 0.0):
        out = []
        for fn in (lambda x, e, kl=kl: fused_erl_loss(x, e, t, kl, rows=rows), lambda x, e, kl=kl: separate(x, e, kl)):
            x, e = x0.clone().requires_grad_(), e0.clone().requires_grad_()
            loss = 0.7 * fn(x, e)
            loss.backward()
            out.append((loss.detach(), x.grad, e.grad))
        for a, b in zip(*out, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        assert out[0][1][:, 0].abs().sum() > 0 if kl else out[0][1][:, 0].abs().sum() == 0  # state 0: diversity only
    want = separate(x0, e0, 0.05)
    low = fused_erl_loss(x0.to(torch.bfloat16), e0.float(), t, 0.05)
    assert low.dtype == torch.float32 and abs(low.item() - want.item()) < 0.02 * want.item()
    with torch.no_grad():
        torch.testing.assert_close(fused_erl_loss(x0, e0, t, 0.05, rows=rows), want)
    with pytest.raises(ValueError, match="at least 2 states"):
        fused_erl_loss(x0[:, :1], e0, t, 0.05)
