"""The wav2vec 2.0 objective (paper §3.2): L = L_m + alpha * L_d (+ feature penalty).

Design choices:
- Contrastive logits are cosine similarities / kappa between each masked frame's projected
  context c_t and the projected quantized targets q: the true q_t first, then k distractors.
  Instead of gathering a (k+1, b, t, d) tensor of targets (HF, fairseq), we normalise once and
  take one (b, t, t) similarity matrix per utterance, then gather k+1 scalars per frame: memory
  O(b·t·(t + k)) instead of O(b·t·k·d), and one batched GEMM.
- A distractor that is the same codeword combination as the positive is set to -inf (it would be
  an unfair "negative"), decided on the code indices (cheap) rather than on vector equality.
- Losses are sums over masked frames, as in the paper's code and HF, so a batch's loss is
  normalised by its number of masked frames (`sample_size`) in the training loop; the diversity
  loss and feature penalty are scaled by that same count.
- All in static shapes (masking by multiplication, not boolean indexing), for torch.compile.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import einsum, rearrange


def contrastive_logits(c: torch.Tensor, q: torch.Tensor, negative_indices: torch.Tensor, logit_temp: float,
                       codes: torch.Tensor | None = None) -> torch.Tensor:
    """Logits (b, t, 1+k): index 0 the positive, then the k distractors.

    c (b, t, d) projected context; q (b, t, d) projected quantized targets;
    negative_indices (b, t, k) time indices into the same utterance; codes (b, t, g) or None.
    """
    c_n = F.normalize(c.float(), dim=-1, eps=1e-8)
    q_n = F.normalize(q.float(), dim=-1, eps=1e-8)
    sim = einsum(c_n, q_n, "b t d, b s d -> b t s")  # every context frame vs every target frame
    pos = torch.diagonal(sim, dim1=1, dim2=2)  # (b, t)
    neg = torch.gather(sim, 2, negative_indices)  # (b, t, k)
    if codes is not None:
        neg = neg.masked_fill(same_codes(codes, negative_indices), float("-inf"))
    return torch.cat([pos[..., None], neg], dim=-1) / logit_temp


def same_codes(codes: torch.Tensor, negative_indices: torch.Tensor) -> torch.Tensor:
    """(b, t, k) True where the distractor has exactly the positive's codewords. codes (b, t, g)."""
    b, t, k = negative_indices.shape
    g = codes.shape[-1]
    flat = rearrange(negative_indices, "b t k -> b (t k)")
    neg_codes = torch.gather(codes, 1, flat[..., None].expand(b, t * k, g))
    neg_codes = rearrange(neg_codes, "b (t k) g -> b t k g", k=k)
    return (neg_codes == codes[:, :, None, :]).all(-1)


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


def contrastive_loss(logits: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over masked frames of -log softmax(logits)[0], and the number of masked frames whose
    positive wins outright. logits (b, t, 1+k), mask (b, t)."""
    weights = mask.to(logits.dtype)
    nll = -torch.log_softmax(logits, dim=-1)[..., 0]
    loss = (nll * weights).sum()
    best = logits.argmax(-1) == 0
    tie = logits.argmin(-1) == 0  # all logits equal: not a win
    correct = ((best & ~tie).to(logits.dtype) * weights).sum()
    return loss, correct


def diversity_loss(perplexity: torch.Tensor, num_codes: int, num_masked: torch.Tensor) -> torch.Tensor:
    """(G·V - ppl) / (G·V), scaled by the number of masked frames (paper eq. 4, as a sum)."""
    return (num_codes - perplexity) / num_codes * num_masked
