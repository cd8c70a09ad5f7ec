"""Span masking statistics and negative sampling properties."""

import torch

from w2v2.masking import compute_mask, sample_negatives


def runs(row: torch.Tensor) -> list[int]:
    """Lengths of the maximal runs of True in a 1-D bool tensor."""
    out, n = [], 0
    for v in row.tolist() + [False]:
        if v:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out


def test_masked_fraction_matches_the_paper() -> None:
    g = torch.Generator().manual_seed(0)
    mask = compute_mask((200, 500), 0.65, 10, 2, g)
    # Paper §4.2: p = 0.065 per frame... in fairseq's parameterisation 0.65 / 10 masks about 49%.
    assert 0.44 < mask.float().mean().item() < 0.54
    assert all(r >= 10 for row in mask for r in runs(row))


def test_sparse_spans_have_the_configured_length_and_count() -> None:
    g = torch.Generator().manual_seed(1)
    mask = compute_mask((300, 1000), 0.05, 10, 2, g)
    lengths = [r for row in mask for r in runs(row)]
    # 0.05 * 1000 / 10 = 5 spans per utterance, of 10 frames each; rare overlaps merge spans.
    assert sum(r == 10 for r in lengths) / len(lengths) > 0.85
    assert all(r % 10 == 0 or r > 10 for r in lengths)
    spans_per_utt = mask.sum().item() / 10 / 300
    assert 4.5 < spans_per_utt <= 5.0


def test_min_masks_padding_and_short_inputs() -> None:
    g = torch.Generator().manual_seed(2)
    fpm = torch.zeros(3, 100, dtype=torch.bool)
    fpm[1, 30:] = True
    fpm[2, 6:] = True
    mask = compute_mask((3, 100), 0.0, 10, 2, g, fpm)
    assert mask[0].sum().item() in range(10, 21) and len(runs(mask[0])) in (1, 2)
    assert not (mask & fpm).any()
    assert mask[2, :6].all()  # shorter than one span: the whole utterance is one span
    empty = compute_mask((2, 0), 0.65, 10, 2, g)
    assert empty.shape == (2, 0)


def test_masking_is_deterministic_for_a_seed() -> None:
    a = compute_mask((4, 300), 0.65, 10, 2, torch.Generator().manual_seed(7))
    b = compute_mask((4, 300), 0.65, 10, 2, torch.Generator().manual_seed(7))
    c = compute_mask((4, 300), 0.65, 10, 2, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_negatives_are_other_masked_frames_of_the_same_utterance() -> None:
    g = torch.Generator().manual_seed(3)
    fpm = torch.zeros(4, 120, dtype=torch.bool)
    fpm[1, 80:] = True
    fpm[3, 25:] = True
    mask = compute_mask((4, 120), 0.65, 5, 2, g, fpm)
    neg = sample_negatives(mask, 50, g)
    assert neg.shape == (4, 120, 50)
    for i in range(4):
        rows = neg[i][mask[i]]  # (n_masked, k)
        positives = torch.arange(120)[mask[i]][:, None]
        assert not (rows == positives).any()
        assert mask[i][rows].all() and not fpm[i][rows].any()
        # All other masked frames are reachable (uniform sampling): most are drawn at least once.
        assert rows.unique().numel() >= 0.9 * mask[i].sum().item()
