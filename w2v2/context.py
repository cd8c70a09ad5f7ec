"""Context network g: Z -> C (paper §2): convolutional relative positional embedding + Transformer.

Design choices:
- Both layer orderings of the paper's code: post-LN (base; LayerNorm after each residual, one
  LayerNorm before the first layer) and pre-LN (large, "stable layer norm"; LayerNorm inside each
  residual branch, one LayerNorm after the last layer).
- One attention path: F.scaled_dot_product_attention with a boolean key-padding mask, so PyTorch
  picks the flash / memory-efficient kernel (the ONNX export broadcasts the mask to (b, 1, t, t), a view,
  so that the graph holds one fused Attention node). Q, K and V come from one fused Linear (one GEMM);
  the HF converter splits and joins their weights. One exception, CPU training with attention dropout:
  there SDPA runs its math path anyway and draws the mask with `bernoulli_`; the same math is written
  out with the cheap mask of w2v2/dropout.py (docs/benchmark.md).
- The positional convolution keeps weight normalisation over the kernel axis (dim 2) as its own
  two parameters (`weight_g`, `weight_v`), computed in fp32 under autocast (it is sensitive to
  precision); an even kernel's extra output frame is trimmed. For long kernels on narrow groups
  (`small`) it is computed as a product of spectra (rfft, a complex matmul per group and frequency,
  irfft), equal to conv1d within 2e-6 and 3-4x faster forward + backward on a CPU batch.
- hidden_states lists the Transformer input and every layer's output (for pre-LN, the last one
  before the final LayerNorm), as transformers 5 does, for the classification head's weighted
  layer sum. (transformers 4 put the final LayerNorm's output last.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from w2v2.config import ContextConfig
from w2v2.dropout import Dropout, dropout


class PositionalConv(nn.Module):
    """Grouped conv over time with weight norm; (b, t, d) -> (b, t, d) relative position signal."""

    def __init__(self, d: int, kernel: int, groups: int) -> None:
        super().__init__()
        if d % groups:
            raise ValueError(f"context.dim={d} is not divisible by context.pos_conv_groups={groups}")
        self.kernel, self.groups = kernel, groups
        std = math.sqrt(4.0 / (kernel * d))
        v = torch.randn(d, d // groups, kernel) * std
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(v.norm(dim=(0, 1), keepdim=True))  # (1, 1, kernel)
        self.bias = nn.Parameter(torch.zeros(d))
        # computed as a product of spectra where that measured faster (docs/benchmark.md): long kernels on
        # narrow groups, `small`'s 64 taps x 16 channels (3x its fwd+bwd); base's 48-channel groups and tiny's
        # 16 taps stay with conv1d. The ONNX export sets False (a Conv node).
        self.spectral = kernel >= 32 and d // groups <= 16

    def weight(self) -> torch.Tensor:
        v = self.weight_v.float()
        return v * (self.weight_g.float() / v.norm(dim=(0, 1), keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = rearrange(x.float(), "b t d -> b d t")
            y = self.spectral_conv(z) if self.spectral else F.conv1d(
                z, self.weight(), self.bias.float(), padding=self.kernel // 2, groups=self.groups)[..., : z.shape[-1]]
            y = F.gelu(y)
        return rearrange(y, "b d t -> b t d").to(x.dtype)

    def spectral_conv(self, x: torch.Tensor) -> torch.Tensor:
        """The same grouped convolution as a product of spectra: (b, d, t) -> (b, d, t). The kernel is flipped
        (conv1d correlates), zero-padded to n >= t + kernel - 1 (no wrap-around), and output frame t is frame
        t + kernel - 1 - kernel // 2 of the full convolution, as conv1d's padding of kernel // 2 gives."""
        t, k = x.shape[-1], self.kernel
        n = 1 << (t + k - 2).bit_length()
        xf = torch.fft.rfft(x, n=n)  # (b, d, f); rfft before any rearrange: inductor mispredicts its strides after one
        wf = torch.fft.rfft(self.weight().flip(-1), n=n)  # (d, c, f)
        # per group and frequency, (b, c) @ (c, o): one batched complex matmul
        yf = torch.matmul(rearrange(xf, "b (g c) f -> g f b c", g=self.groups),
                          rearrange(wf, "(g o) c f -> g f c o", g=self.groups))
        y = torch.fft.irfft(rearrange(yf, "g f b o -> b (g o) f"), n=n)[..., k - 1 - k // 2:][..., :t]
        return y + rearrange(self.bias.float(), "d -> d 1")


class SelfAttention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"context.dim={d} is not divisible by context.heads={heads}")
        self.heads, self.dropout = heads, dropout
        # the key-padding mask broadcast to (b, 1, t, t), a view: what ONNX's Attention op (opset 23) takes,
        # set by the ONNX export only (w2v2.emotion.exported); the probabilities are the same either way
        self.square_mask = False
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, frame_padding_mask: torch.Tensor | None) -> torch.Tensor:
        """x (b, t, d); frame_padding_mask (b, t) True = padded key, or None."""
        q, k, v = rearrange(self.qkv(x), "b t (n h e) -> n b h t e", n=3, h=self.heads)
        keep = None if frame_padding_mask is None else rearrange(~frame_padding_mask, "b t -> b 1 1 t")
        if keep is not None and self.square_mask:
            keep = keep.expand(-1, -1, x.shape[1], -1)
        if self.training and self.dropout > 0 and x.device.type == "cpu":
            # what SDPA computes here too (its math path), but with the cheap dropout mask (w2v2/dropout.py)
            scores = einsum(q, k, "b h t e, b h u e -> b h t u") * q.shape[-1] ** -0.5
            if keep is not None:
                scores = scores.masked_fill(~keep, float("-inf"))
            y = dropout(scores.softmax(-1), self.dropout, True).to(v.dtype) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep,
                                               dropout_p=self.dropout if self.training else 0.0)
        return self.out(rearrange(y, "b h t e -> b t (h e)"))


class FeedForward(nn.Module):
    def __init__(self, d: int, ffn_dim: int, activation_dropout: float, dropout: float) -> None:
        super().__init__()
        self.up = nn.Linear(d, ffn_dim)
        self.down = nn.Linear(ffn_dim, d)
        self.activation_dropout = Dropout(activation_dropout)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(self.activation_dropout(F.gelu(self.up(x)))))


class TransformerLayer(nn.Module):
    def __init__(self, cfg: ContextConfig) -> None:
        super().__init__()
        self.layer_norm_first = cfg.layer_norm_first
        self.attention = SelfAttention(cfg.dim, cfg.heads, cfg.attention_dropout)
        self.dropout = Dropout(cfg.dropout)
        self.norm_attn = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.ffn = FeedForward(cfg.dim, cfg.ffn_dim, cfg.activation_dropout, cfg.dropout)
        self.norm_ffn = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, frame_padding_mask: torch.Tensor | None) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.dropout(self.attention(self.norm_attn(x), frame_padding_mask))
            return x + self.ffn(self.norm_ffn(x))
        x = self.norm_attn(x + self.dropout(self.attention(x, frame_padding_mask)))
        return self.norm_ffn(x + self.ffn(x))


class ContextNetwork(nn.Module):
    """(b, t, d) projected features (masked frames already replaced) -> c (b, t, d)."""

    def __init__(self, cfg: ContextConfig, gradient_checkpointing: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.gradient_checkpointing = gradient_checkpointing
        self.pos_conv = PositionalConv(cfg.dim, cfg.pos_conv_kernel, cfg.pos_conv_groups)
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.dropout)
        self.layers = nn.ModuleList(TransformerLayer(cfg) for _ in range(cfg.layers))

    def forward(self, x: torch.Tensor, frame_padding_mask: torch.Tensor | None = None,
                output_hidden_states: bool = False, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """Returns c (b, t, d) and, if asked, the layers+1 hidden states (b, t, d). LayerDrop's draws come
        from `generator` (torch's global generator if None), never from Python's `random`."""
        if frame_padding_mask is not None:
            x = x.masked_fill(rearrange(frame_padding_mask, "b t -> b t 1"), 0.0)
        x = x + self.pos_conv(x)
        if not self.cfg.layer_norm_first:
            x = self.norm(x)
        x = self.dropout(x)
        hidden = [x]
        # LayerDrop (Fan et al., 2019): skip whole layers at random while training; one draw per layer.
        dropped = [False] * len(self.layers)
        if self.training and self.cfg.layerdrop > 0:
            device = generator.device if generator is not None else "cpu"
            dropped = (torch.rand(len(self.layers), generator=generator, device=device)
                       < self.cfg.layerdrop).tolist()
        for layer, drop in zip(self.layers, dropped, strict=True):
            if drop:
                hidden.append(x)
                continue
            if self.gradient_checkpointing and self.training and x.requires_grad:
                x = checkpoint(layer, x, frame_padding_mask, use_reentrant=False)
            else:
                x = layer(x, frame_padding_mask)
            hidden.append(x)
        if self.cfg.layer_norm_first:
            x = self.norm(x)  # c is normalised; hidden_states keeps the raw last-layer output (as HF 5)
        return x, (tuple(hidden) if output_hidden_states else None)
