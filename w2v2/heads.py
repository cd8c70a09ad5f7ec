"""Utterance classification head: [weighted layer sum] -> projector -> pooling -> classifier.

Design choices:
- Masked mean pooling over real frames (HF's Wav2Vec2ForSequenceClassification), or attentive
  statistics pooling (Okabe et al., 2018: attention-weighted mean and standard deviation), which
  helps for emotion where variation over time (prosody) carries the label.
- The softmax-weighted sum of all hidden states (SUPERB-style) lets a frozen or lightly tuned
  backbone expose its middle layers, where paralinguistic information sits.
"""

from __future__ import annotations

import torch
from einops import einsum, rearrange
from torch import nn

from w2v2.config import HeadConfig
from w2v2.dropout import Dropout


class AttentiveStatsPool(nn.Module):
    def __init__(self, d: int, attention_dim: int = 128) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(d, attention_dim), nn.Tanh(), nn.Linear(attention_dim, 1))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x (b, t, d), keep (b, t) float 1 = real frame -> (b, 2d) [mean, std]."""
        scores = rearrange(self.score(x), "b t 1 -> b t").float()
        scores = scores.masked_fill(keep == 0, float("-inf"))
        w = torch.softmax(scores, dim=-1).to(x.dtype)
        mean = einsum(w, x, "b t, b t d -> b d")
        var = einsum(w, x * x, "b t, b t d -> b d") - mean * mean
        return torch.cat([mean, torch.sqrt(var.clamp(min=1e-6))], dim=-1)


class ClassificationHead(nn.Module):
    input_mean: torch.Tensor  # buffers, with cfg.standardize
    input_std: torch.Tensor

    def __init__(self, cfg: HeadConfig, d: int, num_hidden: int) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.weighted_layer_sum:
            self.layer_weights = nn.Parameter(torch.ones(num_hidden) / num_hidden)
        self.projector = nn.Linear(d, cfg.projector_dim)
        pooled_dim = cfg.projector_dim
        if cfg.pooling == "attentive_stats":
            self.pool = AttentiveStatsPool(cfg.projector_dim)
            pooled_dim *= 2
        self.dropout = Dropout(cfg.dropout)
        self.classifier = nn.Linear(pooled_dim, cfg.num_labels)
        if cfg.standardize:  # identity until a trainer sets them (one row per hidden state, or one for c)
            rows = num_hidden if cfg.weighted_layer_sum else 1
            self.register_buffer("input_mean", torch.zeros(rows, d))
            self.register_buffer("input_std", torch.ones(rows, d))

    def forward(self, c: torch.Tensor, hidden_states: tuple[torch.Tensor, ...] | None,
                frame_padding_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """c (b, t, d) -> (logits (b, num_labels), pooled)."""
        x = c
        if self.cfg.weighted_layer_sum:
            if hidden_states is None:
                raise ValueError("weighted_layer_sum needs the backbone's hidden states")
            stacked = torch.stack(hidden_states)
            if self.cfg.standardize:
                stacked = (stacked - self.input_mean[:, None, None]) / self.input_std[:, None, None]
            weights = torch.softmax(self.layer_weights, dim=-1)
            x = einsum(stacked, weights.to(stacked.dtype), "n b t d, n -> b t d")
        elif self.cfg.standardize:
            x = (x - self.input_mean[0]) / self.input_std[0]
        x = self.projector(x)
        keep = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
        if frame_padding_mask is not None:
            keep = (~frame_padding_mask).to(x.dtype)
        if self.cfg.pooling == "attentive_stats":
            pooled = self.pool(x, keep)
        else:
            pooled = einsum(x, keep, "b t d, b t -> b d") / keep.sum(-1, keepdim=True)
        pooled = self.dropout(pooled)
        return self.classifier(pooled), pooled
