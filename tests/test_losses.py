"""Contrastive and diversity losses: a perfect predictor, distractors equal to the positive."""

import math

import pytest
import torch

from w2v2.losses import contrastive_logits, contrastive_loss, diversity_loss
from w2v2.masking import compute_mask, sample_negatives


def test_perfect_predictor_has_accuracy_one_and_the_expected_loss() -> None:
    b, t, k, kappa = 2, 40, 6, 0.5
    q = torch.eye(t).expand(b, t, t).clone()  # orthonormal targets: cos = 1 to itself, 0 to others
    c = q.clone()  # context equals the true quantized target
    g = torch.Generator().manual_seed(0)
    mask = compute_mask((b, t), 0.5, 4, 2, g)
    negatives = sample_negatives(mask, k, g)
    codes = torch.arange(t).expand(b, t)[..., None]
    logits = contrastive_logits(c, q, negatives, kappa, codes)
    loss, correct = contrastive_loss(logits, mask)
    n = mask.sum().item()
    assert correct.item() == n
    # Per frame: -log(e^(1/kappa) / (e^(1/kappa) + k e^0)) = log(1 + k e^(-1/kappa)).
    assert loss.item() == pytest.approx(n * math.log(1 + k * math.exp(-1 / kappa)), rel=1e-5)


def test_distractors_equal_to_the_positive_are_excluded() -> None:
    b, t, k = 1, 10, 3
    q = torch.randn(b, t, 5)
    q[0, 4] = q[0, 2]  # frames 2 and 4 share their target
    codes = torch.arange(t).reshape(1, t, 1).clone()
    codes[0, 4] = codes[0, 2]
    negatives = torch.zeros(b, t, k, dtype=torch.long)
    negatives[0, 2] = torch.tensor([4, 5, 6])
    logits = contrastive_logits(torch.randn(b, t, 5), q, negatives, 0.1, codes)
    assert logits[0, 2, 1].item() == -math.inf
    assert torch.isfinite(logits[0, 2, 2:]).all()


def test_loss_ignores_unmasked_frames() -> None:
    logits = torch.randn(1, 6, 4)
    mask = torch.tensor([[True, False, True, False, False, False]])
    loss, _ = contrastive_loss(logits, mask)
    expected = -(torch.log_softmax(logits[0, 0], -1)[0] + torch.log_softmax(logits[0, 2], -1)[0])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_diversity_loss_bounds() -> None:
    n = torch.tensor(10)
    assert diversity_loss(torch.tensor(640.0), 640, n).item() == 0.0
    assert diversity_loss(torch.tensor(2.0), 640, n).item() == pytest.approx(10 * 638 / 640)
