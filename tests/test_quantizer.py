"""Gumbel product quantizer: perplexity bounds, straight-through gradients, eval lookup, temperature."""

import math

import pytest
import torch
import torch.nn.functional as F

from w2v2.config import QuantizerConfig
from w2v2.quantizer import GumbelQuantizer, perplexity

G, V = 2, 8


def test_perplexity_is_gv_for_uniform_and_g_for_collapse() -> None:
    uniform = torch.full((50, G, V), 1.0 / V)
    assert perplexity(uniform, None).item() == pytest.approx(G * V, rel=1e-5)
    collapsed = F.one_hot(torch.zeros(50, G, dtype=torch.long), V).float()
    assert perplexity(collapsed, None).item() == pytest.approx(G, rel=1e-5)
    # Only masked frames count: the unmasked half (all code 0) does not lower the perplexity.
    spread = F.one_hot(torch.arange(50)[:, None].expand(50, G) % V, V).float()
    probs = torch.cat([collapsed, spread])
    mask = torch.cat([torch.zeros(50, dtype=torch.bool), torch.ones(50, dtype=torch.bool)])
    assert perplexity(probs, mask).item() == pytest.approx(G * V, rel=2e-2)


def test_straight_through_gradients_reach_the_logits() -> None:
    torch.manual_seed(0)
    qz = GumbelQuantizer(QuantizerConfig(groups=G, codewords=V, codevector_dim=16), in_dim=12).train()
    z = torch.randn(2, 9, 12, requires_grad=True)
    out = qz(z, torch.ones(2, 9, dtype=torch.bool))
    # Hard forward: each group's vector is exactly one codeword.
    rows = qz.codebook[torch.arange(G), out.codes.reshape(-1, G)].reshape(2, 9, -1)
    assert torch.equal(out.q, rows)
    (out.q * torch.randn_like(out.q)).sum().backward()
    assert qz.to_logits.weight.grad.abs().sum() > 0
    assert z.grad.abs().sum() > 0
    # Codebook gradient only on chosen codewords.
    used = torch.zeros(G, V, dtype=torch.bool)
    used[torch.arange(G).expand(18, G), out.codes.reshape(-1, G)] = True
    touched = qz.codebook.grad.abs().sum(-1) > 0
    assert torch.equal(touched, used)


def test_eval_uses_argmax_and_hard_perplexity() -> None:
    torch.manual_seed(0)
    qz = GumbelQuantizer(QuantizerConfig(groups=G, codewords=V, codevector_dim=16), in_dim=12).eval()
    z = torch.randn(3, 7, 12)
    out = qz(z)
    logits = qz.to_logits(z).reshape(3, 7, G, V)
    assert torch.equal(out.codes, logits.argmax(-1))
    assert G <= out.perplexity.item() <= G * V


def test_temperature_schedule() -> None:
    qz = GumbelQuantizer(QuantizerConfig(temp_max=2.0, temp_min=0.5, temp_decay=0.9), in_dim=4)
    assert float(qz.temperature) == 2.0
    qz.set_step(3)
    assert float(qz.temperature) == pytest.approx(2.0 * 0.9**3)
    qz.set_step(1000)
    assert float(qz.temperature) == 0.5
    assert math.isfinite(float(qz.temperature))
