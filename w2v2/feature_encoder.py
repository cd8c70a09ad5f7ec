"""CNN feature encoder f: X -> Z (paper §2) and the projection into the Transformer's width.

Design choices:
- Two variants as in the paper's code: "group" (base: GroupNorm with one group per channel on
  the first layer only) and "layer" (large: LayerNorm over channels after every conv).
- The receptive field (400 samples = 25 ms) and hop (320 samples = 20 ms) follow from the conv
  stack; shorter inputs raise a ValueError instead of failing deep inside a conv.
- fairseq's feature_grad_mult is `grad_scale`: the forward is unchanged, the backward scaled.
- The squared-feature penalty (fairseq's `features_pen`) is computed here, on the raw CNN output.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from w2v2.config import SAMPLE_RATE, FeatureEncoderConfig
from w2v2.dropout import Dropout

Length = TypeVar("Length", int, torch.Tensor)  # a sample count, or a tensor of them


class _GradScale(torch.autograd.Function):
    @staticmethod  # ctx: Any, as it carries our own attribute (`scale`)
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


class ConvBlock(nn.Module):
    """Conv1d -> optional norm -> GELU, on (b, c, s)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, bias: bool, norm: str | None) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, bias=bias)
        self.norm_kind = norm
        self.norm: nn.GroupNorm | nn.LayerNorm
        if norm == "group":
            self.norm = nn.GroupNorm(c_out, c_out, affine=True)
        elif norm == "layer":
            self.norm = nn.LayerNorm(c_out, elementwise_affine=True)
        nn.init.kaiming_normal_(self.conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm_kind == "group":
            x = self.norm(x)
        elif self.norm_kind == "layer":
            x = rearrange(self.norm(rearrange(x, "b c t -> b t c")), "b t c -> b c t")
        return F.gelu(x)


class FeatureEncoder(nn.Module):
    """Raw waveform (b, s) -> CNN features (b, t, c), t = frame_lengths(s)."""

    def __init__(self, cfg: FeatureEncoderConfig, gradient_checkpointing: bool = False) -> None:
        super().__init__()
        if not len(cfg.conv_dim) == len(cfg.conv_kernel) == len(cfg.conv_stride):
            raise ValueError("encoder.conv_dim, conv_kernel and conv_stride must have the same length")
        self.cfg = cfg
        self.gradient_checkpointing = gradient_checkpointing
        dims = (1, *cfg.conv_dim)
        self.layers = nn.ModuleList(
            ConvBlock(dims[i], dims[i + 1], k, s, cfg.conv_bias,
                      "layer" if cfg.norm == "layer" else ("group" if i == 0 else None))
            for i, (k, s) in enumerate(zip(cfg.conv_kernel, cfg.conv_stride, strict=True))
        )

    @property
    def receptive_field(self) -> int:
        return self.cfg.receptive_field

    def _conv_lengths(self, n: Length) -> Length:
        """Each unpadded conv's output length in turn, floor division for an int and a tensor alike (may go
        negative for inputs shorter than the receptive field)."""
        for k, s in zip(self.cfg.conv_kernel, self.cfg.conv_stride, strict=True):
            n = (n - k) // s + 1
        return n

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for an input of `num_samples` samples (plain Python, no tensor)."""
        return max(self._conv_lengths(num_samples), 0)

    def frame_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Frames produced for inputs of `num_samples` samples (any integer tensor shape)."""
        return self._conv_lengths(num_samples).clamp(min=0)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (b, s) -> features (b, t, c)."""
        if wave.dim() != 2:
            raise ValueError(f"expected a waveform batch of shape (batch, samples), got {tuple(wave.shape)}")
        if wave.shape[-1] < self.receptive_field:
            raise ValueError(
                f"input has {wave.shape[-1]} samples; wav2vec 2.0 needs at least {self.receptive_field} "
                f"({1000 * self.receptive_field / SAMPLE_RATE:.0f} ms at 16 kHz) to produce one frame: pad short clips"
            )
        x = rearrange(wave, "b s -> b 1 s")
        for layer in self.layers:
            if self.gradient_checkpointing and self.training and x.requires_grad:
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        if self.cfg.grad_scale != 1.0 and self.training:
            x = _GradScale.apply(x, self.cfg.grad_scale)
        return rearrange(x, "b c t -> b t c")


class FeatureProjection(nn.Module):
    """LayerNorm on z (the quantizer's input), then Linear to the model width and dropout."""

    def __init__(self, c: int, d: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c, eps=eps)
        self.proj = nn.Linear(c, d)
        self.dropout = Dropout(dropout)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (b, t, c) -> (x (b, t, d) for the context network, z (b, t, c) normalised)."""
        z = self.norm(features)
        return self.dropout(self.proj(z)), z
