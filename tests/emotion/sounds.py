"""Sounds that are not speech, made here: digital silence, white noise, hum, and music (a piano-like melody
over chords, with a drum)."""

from __future__ import annotations

import math

import torch

SR = 16000


def white_noise(seconds: float, seed: int = 0, level: float = 0.1) -> torch.Tensor:
    return torch.randn(int(seconds * SR), generator=torch.Generator().manual_seed(seed)) * level


def note(freq: float, seconds: float, harmonics: int = 6) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    tone = sum(torch.sin(2 * math.pi * freq * k * t) / k**1.5 for k in range(1, harmonics + 1))
    return tone * torch.exp(-3 * t)  # a plucked/struck decay


def music(seconds: float, seed: int = 0) -> torch.Tensor:
    """A melody of 0.25 s notes over a chord every second and a kick drum on the beat."""
    g = torch.Generator().manual_seed(seed)
    scale = [261.6, 293.7, 329.6, 349.2, 392.0, 440.0, 493.9, 523.3]
    out = torch.zeros(int(seconds * SR))
    for i in range(int(seconds * 4)):
        f = scale[int(torch.randint(len(scale), (1,), generator=g))]
        s = int(i * SR / 4)
        piece = note(f, 0.6)[: len(out) - s]
        out[s:s + len(piece)] += 0.3 * piece
    for i in range(int(seconds)):
        s = i * SR
        for f in (130.8, 164.8, 196.0):
            piece = note(f, 1.5)[: len(out) - s]
            out[s:s + len(piece)] += 0.15 * piece
        kick = torch.sin(2 * math.pi * 60 * torch.arange(SR // 8) / SR) * torch.exp(-torch.arange(SR // 8) / 300)
        out[s:s + len(kick)] += 0.5 * kick[: len(out) - s]
    return out / out.abs().max() * 0.5


def hum(seconds: float, freq: float = 50.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return 0.2 * torch.sin(2 * math.pi * freq * t) + 0.05 * torch.sin(2 * math.pi * 3 * freq * t)
