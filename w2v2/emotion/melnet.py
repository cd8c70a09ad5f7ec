"""Log-mel spectrograms standardised per speaker or recording set, and the small CNN over them that the
travelling model adds to its descriptors (`w2v2.emotion.travel`; measured in docs/travel.md).

Design choices:
- a second view of the voice: the descriptors summarise a clip in 189 numbers; the network reads how its
  spectrum moves in time. Leave-one-corpus-out, their probabilities averaged beat either alone
  (docs/travel.md, "A second view: a CNN on log-mel spectrograms");
- each window at unit RMS with its mean removed; 64 log-mel bands (25 ms frames, 10 ms hop, 50-8000 Hz),
  each band's power floored at 1e-3 of the window's mean band power before the log, so that a lossy codec's
  emptied bands are not read as deep swings;
- "sounding" frames are those within 35 dB of the window's loudest (as the descriptors'); a group's
  statistics are each band's mean and sd over its windows' sounding frames, every window's moments
  weighing what its row weighs (a recording counts once), shrunk toward the set's as the descriptors' are.
  Standardising the bands per speaker or set takes out a voice's and a studio's spectral colour;
- the network: three 5-frame convolutions over time (bands as channels), batch norm and ReLU after each,
  max-pooling by 2 between them, then each channel's mean and sd over the frames, dropout and one linear
  layer: 0.2 M parameters, a few milliseconds a window on one CPU core;
- trained on random 3 s crops with a band stretch (up to 8 bands) and a time stretch (up to 0.2 s) zeroed,
  drawn so that every corpus and every class within it is met as often (not the neutral reference speech:
  learnt too, it made the network answer "neutral" far too often), AdamW with a one-cycle schedule, a fixed
  number of epochs: no held-out corpus chooses when to stop.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from w2v2.config import SAMPLE_RATE

BANDS = 64
HOP = 160  # 10 ms
CROP = 300  # frames (3 s) a training example is cut to
SOUNDING_DB = 35.0
_MEL = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=400, hop_length=HOP, n_mels=BANDS, f_min=50.0,
                                            f_max=8000.0)


class Mel(NamedTuple):
    """One window's log-mel spectrogram (BANDS, t) and its sounding frames (t,) bool."""

    spec: torch.Tensor
    loud: torch.Tensor


def log_mel(wave: torch.Tensor) -> Mel:
    """The log-mel spectrogram of a mono 16 kHz window (s,), at unit RMS (see the module's notes)."""
    w = wave.float().flatten()
    if w.numel() < 400:
        w = F.pad(w, (0, 400 - w.numel()))
    w = w - w.mean()
    w = w / w.pow(2).mean().sqrt().clamp_min(1e-8)
    with torch.no_grad():
        m = _MEL(w)
    db = 10 * torch.log10(m.sum(0).clamp_min(1e-12))
    return Mel(torch.log(m + 1e-3 * m.mean().clamp_min(1e-12)), db >= db.max() - SOUNDING_DB)


def moments(mels: Sequence[Mel]) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, BANDS) each window's band means and mean squares over its sounding frames."""
    m1 = torch.stack([m.spec[:, m.loud].mean(1) for m in mels])
    m2 = torch.stack([m.spec[:, m.loud].pow(2).mean(1) for m in mels])
    return m1, m2


def group_stats(m1: torch.Tensor, m2: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, variance) (BANDS,) of the frames of rows with moments m1, m2 (n, BANDS), row weights w (n,)."""
    w = (w / w.sum())[:, None]
    mu = (w * m1).sum(0)
    return mu, ((w * m2).sum(0) - mu ** 2).clamp_min(0.0)


def group_scales(m1: torch.Tensor, m2: torch.Tensor, groups: Sequence[Hashable], prior: float = 0.0,
                 weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's (mean, sd) (n, BANDS) to standardise its spectrogram by: its group's statistics, shrunk
    toward the whole set's by a prior of `prior` rows' weight, (n_g * group + prior * set) / (n_g + prior)."""
    from w2v2.emotion.travel import group_rows

    w = torch.ones(len(m1)) if weights is None else weights.float()
    mean, sd = torch.empty_like(m1), torch.empty_like(m1)
    mu_set, var_set = group_stats(m1, m2, w)
    for rows in group_rows(groups):
        n = float(w[rows].sum())
        mu_g, var_g = group_stats(m1[rows], m2[rows], w[rows])
        if prior:
            mu_g, var_g = (n * mu_g + prior * mu_set) / (n + prior), (n * var_g + prior * var_set) / (n + prior)
        mean[rows], sd[rows] = mu_g, var_g.sqrt().clamp_min(1e-3)
    return mean, sd


class MelNet(nn.Module):
    """Standardised log-mel (b, BANDS, t) with each row's frame count (b,) -> logits (b, 6)."""

    def __init__(self, channels: int = 128, dropout: float = 0.3, classes: int = 6) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(c, channels, 5, padding=2) for c in (BANDS, channels, channels)])
        self.norms = nn.ModuleList([nn.BatchNorm1d(channels) for _ in self.convs])
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * channels, classes)

    def forward(self, x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        for k, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            x = F.relu(norm(conv(x)))
            if k < len(self.convs) - 1:
                x = F.max_pool1d(x, 2, ceil_mode=True)
                frames = (frames + 1) // 2
        valid = (torch.arange(x.shape[-1])[None, :] < frames[:, None])[:, None, :].float()
        n = valid.sum(-1).clamp_min(1)
        mu = (x * valid).sum(-1) / n
        sd = (((x - mu[..., None]) ** 2 * valid).sum(-1) / n).clamp_min(1e-6).sqrt()
        return self.out(self.drop(torch.cat([mu, sd], 1)))


def padded(specs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(b, BANDS, longest) zero-padded and the frame counts (b,)."""
    frames = torch.tensor([s.shape[1] for s in specs])
    out = torch.zeros(len(specs), BANDS, int(frames.max()))
    for i, s in enumerate(specs):
        out[i, :, :s.shape[1]] = s
    return out, frames


def _crop(spec: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    t = spec.shape[1]
    if t > CROP:
        s = int(rng.integers(0, t - CROP + 1))
        spec = spec[:, s:s + CROP]
    spec = spec.clone()
    f = int(rng.integers(0, 9))
    f0 = int(rng.integers(0, BANDS - f))
    spec[f0:f0 + f] = 0
    tt = int(rng.integers(0, 21))
    t0 = int(rng.integers(0, max(spec.shape[1] - tt, 1)))
    spec[:, t0:t0 + tt] = 0
    return spec


def train_melnet(specs: Sequence[torch.Tensor], mean: torch.Tensor, sd: torch.Tensor, y: torch.Tensor,
                 masks: torch.Tensor, draw: torch.Tensor, epochs: int, seed: int, lr: float = 1e-3,
                 weight_decay: float = 1e-2, batch_size: int = 32, progress=None) -> MelNet:
    """A MelNet trained on log-mel spectrograms `specs` (each (BANDS, t)), standardised by their rows' `mean`
    and `sd` (n, BANDS), labels y (n,), the classes each row's corpus has (n, 6) bool (the rest left out of its
    softmax), and `draw` (n,) how often each row is drawn (an epoch is n draws). `progress`: called once per
    epoch."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = MelNet()
    n = len(specs)
    steps = epochs * ((n + batch_size - 1) // batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    # a tenth of the steps warming up (at least two: the schedule needs them; fewer than four steps: constant)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=max(0.1, 2 / steps)) \
        if steps >= 4 else None
    p = (draw / draw.sum()).double().numpy()
    p = p / p.sum()
    net.train()
    for _ in range(epochs):
        order = rng.choice(n, size=n, p=p)
        for b0 in range(0, n, batch_size):
            batch = order[b0:b0 + batch_size]
            x, frames = padded([_crop((specs[i].float() - mean[i, :, None]) / sd[i, :, None], rng) for i in batch])
            logits = net(x, frames).masked_fill(~masks[batch], -1e9)
            loss = F.cross_entropy(logits, y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
        if progress is not None:
            progress()
    return net.eval()


@torch.no_grad()
def melnet_probs(nets: Iterable[nn.Module], mels: Sequence[Mel], mean: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
    """(n, 6) the nets' mean softmax of each window, standardised by its row's `mean` and `sd` (n, BANDS)."""
    nets = list(nets)
    out = torch.zeros(len(mels), 6)
    for net in nets:
        net.eval()
        for i, m in enumerate(mels):
            z = (m.spec - mean[i, :, None]) / sd[i, :, None]
            out[i] += torch.softmax(net(z[None], torch.tensor([z.shape[1]])), -1)[0]
    return out / max(len(nets), 1)
