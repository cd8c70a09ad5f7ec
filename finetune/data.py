"""Training-time augmentation of decoded clips (decoding and windowed prediction: `w2v2.emotion.windows`)."""

from __future__ import annotations

import math
import random

import torch

from finetune.config import AugmentConfig
from w2v2.data.batching import fit_length
from w2v2.emotion.windows import speed_view


def augment(wave: torch.Tensor, cfg: AugmentConfig, rng: random.Random, crop: int | None = None,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Speed perturbation, random gain and additive white noise at a random SNR. wave (s,).

    With `crop` (samples after the speed change), a random crop comes first: only the samples the
    model will see are resampled and noised (a 3 s crop of a 10 s clip: 3.3x less work), and the
    noise's SNR is that of the crop."""
    speed = rng.choice(cfg.speeds)
    if crop is not None:  # at speed s, crop*s source samples become ~crop samples
        wave = fit_length(wave, math.ceil(crop * speed), generator, min_len=0)
    if speed != 1.0:
        wave = speed_view(wave, speed)
    wave = wave * 10 ** (rng.uniform(-cfg.gain_db, cfg.gain_db) / 20)
    if rng.random() < cfg.noise_prob:
        power = wave.pow(2).mean().clamp(min=1e-10)
        snr = rng.uniform(*cfg.noise_snr_db)
        g = torch.Generator().manual_seed(rng.randrange(2**31))
        wave = wave + torch.randn(wave.shape, generator=g) * torch.sqrt(power / 10 ** (snr / 10))
    return wave


