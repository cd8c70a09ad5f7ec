"""The cheap CPU dropout (w2v2/dropout.py) and the attention that uses it: the same distribution as
F.dropout, the same global generator, and attention equal to SDPA's when nothing is dropped."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from w2v2.context import SelfAttention
from w2v2.dropout import Dropout, dropout, keep_mask


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5])
def test_mask_keeps_one_minus_p_and_scales_to_an_unbiased_mean(p: float) -> None:
    torch.manual_seed(0)
    mask = keep_mask(torch.Size((1000, 1000)), p, torch.float32)
    kept = 1 - round(p * 65536) / 65536
    values = mask.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / kept, rel=1e-6)
    share = (mask > 0).float().mean().item()
    assert abs(share - (1 - p)) < 5 * (p * (1 - p) / 1e6) ** 0.5  # 5 sd of a binomial share
    assert abs(mask.mean().item() - 1) < 5e-3


def test_masks_are_independent_across_lanes_and_calls() -> None:
    torch.manual_seed(0)
    a, b = (keep_mask(torch.Size((200_000,)), 0.5, torch.float32) > 0 for _ in range(2))
    assert not torch.equal(a, b)
    # neighbours share a 64-bit draw: their agreement must be that of independent coins (0.5)
    agree = (a[:-1] == a[1:]).float().mean().item()
    assert abs(agree - 0.5) < 0.01
    assert abs((a == b).float().mean().item() - 0.5) < 0.01


def test_dropout_follows_the_global_seed_and_is_identity_in_eval_or_at_zero() -> None:
    x = torch.randn(4, 50, 32)
    torch.manual_seed(3)
    first = dropout(x, 0.1, True)
    torch.manual_seed(3)
    assert torch.equal(first, dropout(x, 0.1, True))
    assert not torch.equal(first, x)
    assert dropout(x, 0.1, False) is x and dropout(x, 0.0, True) is x
    module = Dropout(0.1).eval()
    assert module(x) is x
    assert torch.equal(dropout(x, 1.0, True), torch.zeros_like(x))  # F.dropout's answer at p = 1
    near_one = dropout(x, 1 - 1e-6, True)  # a rate the config allows ([0, 1)) that rounds to 1: torch's dropout
    assert torch.isfinite(near_one).all() and (near_one == 0).float().mean() > 0.99


def test_dropout_keeps_the_dtype_under_bf16_autocast_and_passes_gradients_through_the_mask() -> None:
    x = torch.randn(8, 16, requires_grad=True)
    torch.manual_seed(0)
    y = dropout(x.bfloat16(), 0.2, True)
    assert y.dtype == torch.bfloat16
    torch.manual_seed(0)
    dropout(x, 0.2, True).sum().backward()
    torch.manual_seed(0)
    assert torch.equal(x.grad, keep_mask(x.shape, 0.2, torch.float32))  # type: ignore[arg-type]


def test_training_attention_equals_sdpa_when_nothing_is_dropped() -> None:
    """The written-out attention (CPU training with attention dropout) is SDPA's: with a rate that rounds to
    0 of 65536, both give the same output, padding mask included."""
    torch.manual_seed(0)
    att = SelfAttention(32, 4, dropout=1e-7)
    x = torch.randn(3, 20, 32)
    padded = torch.arange(20)[None, :] >= torch.tensor([20, 14, 5])[:, None]
    expected = att.eval()(x, padded)
    got = att.train()(x, padded)
    assert torch.allclose(got, expected, atol=1e-6), (got - expected).abs().max()


def test_training_attention_is_unbiased_over_masks() -> None:
    torch.manual_seed(0)
    att = SelfAttention(16, 2, dropout=0.3)
    x = torch.randn(1, 12, 16)
    with torch.no_grad():
        expected = att.eval()(x, None)
        mean = torch.stack([att.train()(x, None) for _ in range(4000)]).mean(0)
    assert (mean - expected).abs().max() < 0.02
    assert F.mse_loss(att.train()(x, None), expected) > 1e-4  # a mask was drawn
