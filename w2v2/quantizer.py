"""Gumbel-softmax product quantizer (paper §2, "Quantization module"; §3.2 diversity loss).

z (b, t, c) -> logits l (b, t, g, v) -> one codeword per group -> q = concat_g e_g (b, t, g*e).

Design choices:
- Codewords are looked up by index (a gather) rather than by a one-hot (b·t, g·v) matrix times the
  codebook as in HF/fairseq; the straight-through estimator (Jang et al., 2016) is kept by a custom
  autograd function whose backward is exactly that of the one-hot product: d q / d p = e.
- Logits, Gumbel noise and softmax run in fp32 under autocast (they are sensitive to precision).
- Training: hard Gumbel-softmax sample, perplexity from the soft (noise-free) probabilities
  averaged over masked frames (paper §3.2). Eval: argmax, perplexity from the hard one-hot
  choices (as HF, so the two agree in eval mode).
- Temperature tau = max(temp_max * temp_decay**step, temp_min), set by `set_step` (paper §4.2).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from einops import einsum, rearrange, reduce
from torch import nn

from w2v2.config import QuantizerConfig


class QuantizerOutput(NamedTuple):
    q: torch.Tensor  # (b, t, g*e) quantized vectors
    codes: torch.Tensor  # (b, t, g) chosen codeword per group
    perplexity: torch.Tensor  # () sum over groups of exp(entropy of the averaged distribution)


class _StraightThroughLookup(torch.autograd.Function):
    """Forward: e[g, codes]. Backward: as hard_one_hot(codes) - p.detach() + p, times the codebook."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, probs: torch.Tensor, codes: torch.Tensor,
                codebook: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(codes, codebook)
        return lookup(codebook, codes)

    @staticmethod  # ctx: Any, as torch's stub types saved_tensors as a 1-tuple
    def backward(ctx: Any, grad_q: torch.Tensor) -> tuple[torch.Tensor, None, torch.Tensor]:
        codes, codebook = ctx.saved_tensors
        grad_probs = einsum(grad_q, codebook.to(grad_q.dtype), "n g e, g v e -> n g v")
        g, v, _ = codebook.shape
        flat = rearrange(codes + torch.arange(g, device=codes.device) * v, "n g -> (n g)")
        grad_codebook = torch.zeros(g * v, codebook.shape[-1], dtype=grad_q.dtype, device=grad_q.device)
        grad_codebook.index_add_(0, flat, rearrange(grad_q, "n g e -> (n g) e"))
        return grad_probs, None, rearrange(grad_codebook, "(g v) e -> g v e", g=g).to(codebook.dtype)


def straight_through_lookup(probs: torch.Tensor, codes: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """codebook[g, codes] (n, g, e) forward; backward as one_hot(codes) - probs.detach() + probs times the
    codebook (the straight-through Gumbel-softmax estimator). probs (n, g, v), codes (n, g)."""
    return _StraightThroughLookup.apply(probs, codes, codebook)


def lookup(codebook: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """codebook (g, v, e), codes (n, g) -> (n, g, e)."""
    g = codebook.shape[0]
    return codebook[torch.arange(g, device=codes.device), codes]


def perplexity(probs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """probs (n, g, v), mask (n,) or None -> sum_g exp(H(mean_n p)). Bounds: [g, g*v]."""
    if mask is None:
        marginal = reduce(probs, "n g v -> g v", "mean")
    else:
        weights = mask.to(probs.dtype)
        marginal = einsum(probs, weights, "n g v, n -> g v") / weights.sum().clamp(min=1)
    entropy = -(marginal * torch.log(marginal + 1e-7)).sum(-1)
    return torch.exp(entropy).sum()


class GumbelQuantizer(nn.Module):
    temperature: torch.Tensor  # buffer

    def __init__(self, cfg: QuantizerConfig, in_dim: int) -> None:
        super().__init__()
        if cfg.codevector_dim % cfg.groups:
            raise ValueError(f"quantizer.codevector_dim={cfg.codevector_dim} not divisible by groups={cfg.groups}")
        self.cfg = cfg
        self.to_logits = nn.Linear(in_dim, cfg.groups * cfg.codewords)
        nn.init.normal_(self.to_logits.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.to_logits.bias)
        self.codebook = nn.Parameter(torch.rand(cfg.groups, cfg.codewords, cfg.codevector_dim // cfg.groups))
        # A buffer, not a Python float: torch.compile would otherwise recompile at every new value.
        self.register_buffer("temperature", torch.tensor(cfg.temp_max), persistent=False)

    def set_step(self, step: int) -> None:
        self.temperature.fill_(max(self.cfg.temp_max * self.cfg.temp_decay**step, self.cfg.temp_min))

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> QuantizerOutput:
        """z (b, t, c); mask (b, t) frames counted in the perplexity (None: all)."""
        b = z.shape[0]
        with torch.autocast(device_type=z.device.type, enabled=False):
            logits = F.linear(z.float(), self.to_logits.weight.float(), self.to_logits.bias.float())
            logits = rearrange(logits, "b t (g v) -> (b t) g v", g=self.cfg.groups)
            flat_mask = None if mask is None else rearrange(mask, "b t -> (b t)")
            codebook = self.codebook.float()
            if self.training:
                gumbels = -torch.empty_like(logits).exponential_().log()
                soft_sample = torch.softmax((logits + gumbels) / self.temperature, dim=-1)
                codes = soft_sample.argmax(-1)
                q = straight_through_lookup(soft_sample, codes, codebook)
                ppl = perplexity(torch.softmax(logits, dim=-1), flat_mask)
            else:
                codes = logits.argmax(-1)
                q = lookup(codebook, codes)
                ppl = perplexity(F.one_hot(codes, self.cfg.codewords).float(), flat_mask)
        q = rearrange(q, "(b t) g e -> b t (g e)", b=b).to(z.dtype)
        return QuantizerOutput(q, rearrange(codes, "(b t) g -> b t g", b=b), ppl)
