"""The cheap CPU dropout: drop rate, unbiased scale, gradient through the same mask, repeatability, and TIGER's
hand-written CPU attention path against torch's scaled_dot_product_attention."""

import pytest
import torch
import torch.nn.functional as F

from recgen.ops.dropout import Dropout, dropout


def test_drop_rate_and_expectation_match_p():
    torch.manual_seed(0)
    x = torch.ones(400_000)
    for p in (0.1, 0.5):
        y = dropout(x, p)
        dropped = float((y == 0).float().mean())
        assert abs(dropped - p) < 0.005, (p, dropped)  # 400k draws: standard error <= 0.0008
        assert abs(float(y.mean()) - 1.0) < 0.01, p  # kept values are scaled by 1 / P(keep)
        kept = y[y != 0]
        assert torch.allclose(kept, torch.full_like(kept, float(kept[0])))
        assert float(kept[0]) == pytest.approx(1 / (1 - p), rel=1e-4)


def test_mask_lanes_are_uniform_and_odd_sizes_work():
    torch.manual_seed(1)
    y = dropout(torch.ones(4 * 100_000 + 3), 0.25).view(-1)  # not a multiple of the four lanes of one draw
    assert y.shape == (400_003,)
    lanes = (y[:400_000] == 0).float().view(-1, 4).mean(0)  # each 16-bit lane of the 64-bit draws on its own
    assert torch.all((lanes - 0.25).abs() < 0.01), lanes


def test_gradient_flows_through_the_kept_elements_only():
    torch.manual_seed(2)
    x = torch.randn(64, 33, requires_grad=True)
    y = dropout(x, 0.3)
    g = torch.randn_like(y)
    y.backward(g)
    keep = y != 0
    scale = float((y.detach()[keep] / x.detach()[keep]).mean())
    assert torch.allclose(x.grad, torch.where(keep, g * scale, torch.zeros_like(g)))


def test_eval_mode_zero_p_and_repeatability():
    x = torch.randn(10, 10)
    module = Dropout(0.5)
    module.eval()
    assert module(x) is x
    assert dropout(x, 0.0) is x
    assert dropout(x, 0.5, training=False) is x
    torch.manual_seed(3)
    a = dropout(x, 0.5)
    torch.manual_seed(3)
    assert torch.equal(a, dropout(x, 0.5))  # torch's generator: a seed repeats the mask
    assert torch.equal(dropout(x, 1.0), F.dropout(x, 1.0))  # p = 1 drops everything, as torch does
    assert torch.isfinite(dropout(x, 1 - 1e-7)).all()  # rounds to 65535 of 65536 lanes dropped, no division by 0
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\]"):
            dropout(x, bad)


def test_tiger_cpu_attention_with_dropout_matches_sdpa_when_nothing_is_dropped():
    from recgen.models.nn import MultiHeadAttention

    torch.manual_seed(4)
    att = MultiHeadAttention(16, 2, dropout=1e-9, cheap_dropout=True)  # rounds to 0 of 65536: nothing dropped
    att.train()
    x = torch.randn(3, 5, 16)
    k, v = att.keys_values(torch.randn(3, 7, 16))
    mask = torch.rand(3, 1, 1, 7) > 0.3
    mask[..., 0] = True
    got = att.attend(x, k, v, mask)
    q = att.queries(x)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(-3, -2)
    ref = att.out(ref.reshape(3, 5, -1))
    assert torch.allclose(got, ref, atol=1e-6)
    # the fused self-attention path equals the separate projections
    mask = torch.ones(1, 1, 5, 5, dtype=torch.bool).tril()
    att.eval()
    k, v = att.keys_values(x)
    assert torch.allclose(att(x, mask), att.attend(x, k, v, mask), atol=1e-6)
