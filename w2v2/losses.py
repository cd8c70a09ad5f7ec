"""The wav2vec 2.0 objective (paper §3.2): L = L_m + alpha * L_d + beta * feature penalty (`objective`).

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

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import einsum, rearrange

from w2v2.config import ObjectiveConfig


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


def feature_penalty(features: torch.Tensor) -> torch.Tensor:
    """Mean squared raw CNN feature (b, t, c) -> () (paper §4.2: an L2 penalty on the encoder's output)."""
    return features.float().pow(2).mean()


class Objective(NamedTuple):
    loss: torch.Tensor  # L = contrastive + alpha * diversity + beta * feature_penalty
    contrastive: torch.Tensor  # L_m, summed over masked frames
    diversity: torch.Tensor  # L_d, scaled by the number of masked frames
    feature_penalty: torch.Tensor  # scaled by the number of masked frames
    num_masked: torch.Tensor
    correct: torch.Tensor  # masked frames whose positive scores highest


def objective(logits: torch.Tensor, mask: torch.Tensor, perplexity: torch.Tensor, num_codes: int,
              features: torch.Tensor, cfg: ObjectiveConfig) -> Objective:
    """The whole pretraining loss from the contrastive logits (b, t, 1+k), the span mask (b, t), the
    quantizer's perplexity over G·V = `num_codes` codewords and the raw CNN features (b, t, c)."""
    contrastive, correct = contrastive_loss(logits, mask)
    num_masked = mask.sum()
    diversity = diversity_loss(perplexity, num_codes, num_masked)
    penalty = feature_penalty(features) * num_masked
    loss = contrastive + cfg.diversity_weight * diversity + cfg.feature_penalty * penalty
    return Objective(loss, contrastive, diversity, penalty, num_masked, correct)
