"""TIGER: learnability on a determined next item, trie-constrained vs free beam search, and the key/value-cached
decoder against teacher forcing."""

import dataclasses

import numpy as np
import pytest
import torch

from recgen.data.split import leave_one_out
from recgen.errors import ConfigError
from recgen.eval.evaluator import evaluate
from recgen.models import create_model
from recgen.models.base import Recommender
from recgen.testing import make_cycle_dataset as cycle_dataset

SMALL = dict(
    embeddings="svd", svd_dim=8, codebook_size=4, levels=2, d_model=32, ffn_dim=64, epochs=30, eval_every=5,
    lr=3e-3, batch_size=32, beam=5,
)  # fmt: skip


@pytest.fixture(scope="module")
def cycle_split():
    return leave_one_out(cycle_dataset(n_items=30))


@pytest.mark.parametrize("tokenizer", ["rqkmeans", "id"])
def test_learns_the_next_item(cycle_split, tokenizer):
    model = create_model("tiger", tokenizer=tokenizer, **SMALL).fit(cycle_split.train, valid=cycle_split.valid)
    res = evaluate(model, cycle_split.test, ks=(1,))
    assert res.metrics["recall@1"] >= 0.9, (tokenizer, res.metrics, model.train_log_)


@pytest.fixture(scope="module")
def untrained(cycle_split):
    """One epoch, no validation: a model whose beams wander, so free decoding produces invalid tuples."""
    # attention heads narrower than d_model / n_heads, as the paper's 6 x 64 over 128 (here 3 x 8 over 32)
    cfg = dict(SMALL, epochs=1, tokenizer="rqkmeans", codebook_size=6, beam=30, n_heads=3, head_dim=8)
    return create_model("tiger", **cfg).fit(cycle_split.train)


def test_trie_never_decodes_an_invalid_id_and_free_search_counts_them(untrained, cycle_split):
    users = cycle_split.test.user_ids
    hists = cycle_split.test.histories(slice(None))
    for constrained in (True, False):
        decode = untrained.decode_config({"constrained": constrained})
        untrained.reset_stats()
        items, logp, _ = untrained.beam_search(users, hists, decode)
        untrained.score(users, hists, decode={"constrained": constrained})
        info = untrained.run_info()
        st = info["stats"]
        assert info["constrained"] is constrained and untrained.config.constrained is True
        finite = torch.isfinite(logp)
        if constrained:
            assert st["invalid"] == 0 and bool((items[finite] > 0).all())
        else:
            assert st["invalid"] > 0 and st["invalid"] == int((finite & (items == 0)).sum())
        # beams are sorted and a valid item appears at most once per user
        assert bool((logp[:, :-1] >= logp[:, 1:]).all())
        for row in items:
            row = row[row > 0]
            assert len(set(row.tolist())) == len(row)


def test_cached_beam_log_probs_equal_teacher_forcing(untrained, cycle_split):
    """The key/value-cached decoder must give each beam the log-probability a full teacher-forced pass gives."""
    users = cycle_split.test.user_ids[:5]
    hists = cycle_split.test.histories(np.arange(5))
    items, logp, _ = untrained.beam_search(users, hists)
    net = untrained._inference_net()
    src = torch.from_numpy(untrained._source(users, hists))
    memory, mask = net.encode(src)
    off = torch.from_numpy(untrained.offsets_)
    torch.set_grad_enabled(False)
    for b in range(5):
        for w in range(3):
            codes = torch.from_numpy(untrained.codes_[int(items[b, w])])
            dec_in = torch.cat([torch.tensor([1]), (codes + off)[:-1]])[None]
            h = net.decode_train(dec_in, memory[b : b + 1], mask[b : b + 1])[0]
            total = 0.0
            for lv, size in enumerate(untrained.level_sizes_):
                o = int(untrained.offsets_[lv])
                lp = torch.log_softmax(h[lv] @ net.tok.weight[o : o + size].T, -1)  # masking does not renormalise
                total += float(lp[codes[lv]])
            assert abs(total - float(logp[b, w])) < 1e-8
    torch.set_grad_enabled(True)


def test_encoding_by_length_groups_equals_the_full_width_encoding(untrained, cycle_split):
    """Decoding encodes users sorted by history length, a few at a time at their own width: the memory at every
    attended position and the key mask must equal one full-width pass (an unknown user with no history too)."""
    from recgen.models.semantic.tiger import encode_by_length

    n = 9
    users = np.concatenate([cycle_split.test.user_ids[:n], [0]])
    hists = [h[: 1 + i % 4] if i % 3 else h for i, h in enumerate(cycle_split.test.histories(np.arange(n)))] + [
        np.array([], dtype=np.int64)
    ]
    src = torch.from_numpy(untrained._source(users, hists))
    assert len({int(v) for v in (src != 0).sum(1)}) >= 3  # several lengths, one all-padding row
    net = untrained._inference_net()
    with torch.no_grad():
        full, full_mask = net.encode(src)
        grouped, mask = encode_by_length(net, src, group=3)
    assert torch.equal(mask, full_mask)
    keep = mask[:, 0, 0, :]
    assert torch.allclose(grouped[keep], full[keep], atol=1e-10)
    with pytest.raises(ValueError, match="group must be >= 1"):
        encode_by_length(net, src, group=0)


def test_bad_config():
    with pytest.raises(ConfigError, match="tokenizer"):
        create_model("tiger", tokenizer="bpe")
    with pytest.raises(ConfigError, match="n_heads"):
        create_model("tiger", d_model=30, n_heads=4)
    with pytest.raises(ConfigError, match="device"):
        create_model("tiger", device="tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour of a machine without a GPU")
def test_gpu_device_without_a_gpu_is_a_clear_error_at_fit_and_a_gpu_model_loads_on_the_cpu(tmp_path, cycle_split):
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        create_model("tiger", **dict(SMALL, tokenizer="id", epochs=1, device="cuda")).fit(cycle_split.train)
    m = create_model("tiger", **dict(SMALL, tokenizer="id", epochs=1, device="auto")).fit(cycle_split.train)
    assert m.net_.tok.weight.device.type == "cpu"
    m.config = dataclasses.replace(m.config, device="cuda")  # as a model trained on a GPU is saved
    m.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.config.device == "cuda" and loaded.net_.tok.weight.device.type == "cpu"
    users, hists = cycle_split.test.user_ids, cycle_split.test.histories(slice(None))
    assert torch.equal(loaded.score(users, hists), m.score(users, hists))


def test_fitted_codes_are_cached_by_data_fields_and_seed(tmp_path, monkeypatch, cycle_split):
    from recgen.models.semantic.item_codes import codes_cache_path, fit_item_tokenizer
    from recgen.models.semantic.tiger import TIGERConfig

    monkeypatch.setenv("RECGEN_CACHE_DIR", str(tmp_path))
    cfg = TIGERConfig(**{k: v for k, v in SMALL.items() if k in ("embeddings", "svd_dim", "codebook_size", "levels")})
    cfg = dataclasses.replace(cfg, tokenizer="rqkmeans")
    codes, stats = fit_item_tokenizer(cycle_split.train, cfg)
    path = codes_cache_path(cycle_split.train, cfg)
    assert path.is_file() and path.parent == tmp_path / "codes" and "cached" not in stats
    again, stats2 = fit_item_tokenizer(cycle_split.train, cfg)
    assert np.array_equal(again, codes) and stats2["cached"] is True
    assert stats2["collision_rate"] == stats["collision_rate"]
    # another seed, another field or other data: another entry; nothing left half-written
    assert codes_cache_path(cycle_split.train, dataclasses.replace(cfg, seed=1)) != path
    assert codes_cache_path(cycle_split.train, dataclasses.replace(cfg, codebook_size=5)) != path
    assert codes_cache_path(leave_one_out(cycle_dataset(n_items=31)).train, cfg) != path
    assert not list((tmp_path / "codes").glob("*.tmp-*"))
    monkeypatch.setenv("RECGEN_CACHE_DIR", "off")
    assert codes_cache_path(cycle_split.train, cfg) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a GPU machine)")
def test_trains_and_decodes_on_a_gpu_and_loads_on_the_cpu(tmp_path, cycle_split):
    cfg = dict(SMALL, tokenizer="rqkmeans", device="cuda", n_heads=4, head_dim=16)
    model = create_model("tiger", **cfg).fit(cycle_split.train, valid=cycle_split.valid)
    assert model.net_.tok.weight.device.type == "cuda" and model.eval_batch_size == 1024
    res = evaluate(model, cycle_split.test, ks=(1,))
    assert res.metrics["recall@1"] >= 0.9, (res.metrics, model.train_log_)
    assert model.run_info()["stats"]["invalid"] == 0
    model.save(tmp_path / "m")
    users, hists = cycle_split.test.user_ids, cycle_split.test.histories(slice(None))
    gpu_top = model.score(users, hists).argmax(1)
    loaded = Recommender.load(tmp_path / "m")
    loaded.net_ = loaded.net_.cpu()
    loaded._infer_net_ = None
    assert torch.equal(loaded.score(users, hists).argmax(1), gpu_top)
