"""Straightforward reference versions of the fused ops, for the benchmark and the tests that check them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def contrastive_logits_reference(c: torch.Tensor, q: torch.Tensor, negative_indices: torch.Tensor,
                                 logit_temp: float) -> torch.Tensor:
    """Straightforward version (gathers all targets; -inf on vector equality), for tests and benchmarks."""
    b, t, k = negative_indices.shape
    flat = rearrange(negative_indices, "b t k -> b (t k)")
    negs = torch.gather(q, 1, flat[..., None].expand(b, t * k, q.shape[-1]))
    negs = rearrange(negs, "b (t k) d -> b t k d", k=k)
    targets = torch.cat([q[:, :, None, :], negs], dim=2)  # (b, t, 1+k, d)
    logits = F.cosine_similarity(c.float()[:, :, None, :], targets.float(), dim=-1) / logit_temp
    neg_is_pos = (negs == q[:, :, None, :]).all(-1)
    logits[..., 1:] = logits[..., 1:].masked_fill(neg_is_pos, float("-inf"))
    return logits
