"""Span masking and in-utterance negative sampling (paper §3.1, §3.2), as pure torch functions.

Design choices:
- Every random draw takes an explicit `torch.Generator`, so a training step is reproducible from
  its seed (resume is exact) and the functions are testable.
- Masking follows the paper's code: each valid frame starts a span with probability `mask_prob`
  (num_spans = floor(mask_prob * length / mask_length + U[0,1)), at least `min_masks`), starts are
  distinct, spans may overlap (about 49% of frames masked for 0.65 / 10). Spans never reach into
  padding. Utterances shorter than `mask_length` get one span of their whole length.
- Negatives (distractors) are drawn uniformly with replacement from the *other masked* frames of
  the same utterance, never the positive and never padding (paper §3.2; fairseq and HF alike).
  An utterance with a single masked frame has no distractor: its index points at itself, and the
  loss masks distractors equal to the positive.
- Vectorised over the batch (no Python loop over utterances), so it runs on the GPU.
"""

from __future__ import annotations

import torch
from einops import rearrange


def _valid_lengths(shape: tuple[int, int], frame_padding_mask: torch.Tensor | None,
                   device: torch.device) -> torch.Tensor:
    b, t = shape
    if frame_padding_mask is None:
        return torch.full((b,), t, dtype=torch.long, device=device)
    return (~frame_padding_mask).sum(-1)


def compute_mask(shape: tuple[int, int], mask_prob: float, mask_length: int, min_masks: int,
                 generator: torch.Generator | None = None, frame_padding_mask: torch.Tensor | None = None,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """Span mask of shape (b, t), True = masked frame.

    shape: (b, t) frames; frame_padding_mask (b, t) True = padded frame (spans stay before it).
    """
    b, t = shape
    if mask_length < 1:
        raise ValueError(f"mask_length must be >= 1, got {mask_length}")
    if frame_padding_mask is not None:
        device = frame_padding_mask.device
    gen_device = generator.device if generator is not None else torch.device("cpu")
    lengths = _valid_lengths(shape, frame_padding_mask, torch.device(gen_device))
    span = lengths.clamp(max=mask_length)  # (b,) span length per utterance
    candidates = (lengths - span + 1).clamp(min=0)  # valid start positions
    jitter = torch.rand(b, generator=generator, device=gen_device)
    num_spans = torch.floor(mask_prob * lengths / mask_length + jitter).long()
    num_spans = torch.minimum(num_spans.clamp(min=min_masks), candidates)
    # Distinct starts: rank random keys, pushing impossible starts to the end.
    keys = torch.rand(b, t, generator=generator, device=gen_device)
    positions = torch.arange(t, device=gen_device)
    keys = keys.masked_fill(positions[None, :] >= candidates[:, None], 2.0)
    n_max = max(int(num_spans.max()), 1) if b else 1
    starts = keys.argsort(dim=-1)[:, :n_max]  # (b, n): start positions in random order
    chosen = positions[None, :n_max] < num_spans[:, None]  # the first num_spans of them
    offsets = positions[None, None, :] - starts[:, :, None]  # (b, n, t)
    covered = (offsets >= 0) & (offsets < span[:, None, None]) & chosen[:, :, None]
    return covered.any(dim=1).to(device)


def sample_negatives(mask: torch.Tensor, num_negatives: int, generator: torch.Generator | None = None,
                     ) -> torch.Tensor:
    """Distractor time indices (b, t, k) for every masked frame, from the other masked frames.

    mask (b, t) True = masked. Rows of unmasked frames are filled but meaningless.
    """
    b, t = mask.shape
    gen_device = generator.device if generator is not None else torch.device("cpu")
    m = mask.to(gen_device)
    n_masked = m.sum(-1)  # (b,)
    # Time indices of masked frames first (in time order): masked_pos[b, r] is the r-th masked frame.
    masked_pos = torch.argsort((~m).to(torch.int8), dim=-1, stable=True)
    rank = (m.long().cumsum(-1) - 1).clamp(min=0)  # (b, t): rank of each masked frame
    others = (n_masked - 1).clamp(min=1)
    draw = torch.rand(b, t, num_negatives, generator=generator, device=gen_device)
    j = torch.floor(draw * rearrange(others, "b -> b 1 1")).long()
    j = j + (j >= rank[..., None]).long()  # skip the positive itself
    j = torch.minimum(j, rearrange((n_masked - 1).clamp(min=0), "b -> b 1 1"))
    idx = torch.gather(masked_pos, 1, rearrange(j, "b t k -> b (t k)"))
    return rearrange(idx, "b (t k) -> b t k", k=num_negatives).to(mask.device)
