"""Acoustic descriptors of a clip: what makes emotion recognition travel across languages and studios.

Frame descriptors every 10 ms (loudness, pitch in semitones and its movement, voicing, spectral centroid,
alpha ratio, Hammarberg index, spectral flux, 13 MFCCs, 40 log-mel bands), summarised over the clip's
sounding frames by functionals (mean, sd, percentiles 10/50/90, their range, slope, skewness), plus
rhythm (voiced segments per second, their mean length and spread, pause length). 189 numbers a clip.

Design choices:
- in the spirit of eGeMAPS (Eyben et al., 2016), the minimalistic set built for cross-corpus emotion
  work, but computed in plain torch (no openSMILE binary), so the library stays pip-installable;
- pitch by normalised autocorrelation over 40 ms frames (60-500 Hz), voiced where its peak is > 0.5:
  crude next to RAPT or pYIN, but it moves with the voice, which is what functionals of it need;
- "sounding" frames are those within 35 dB of the clip's loudest: leading and trailing silence
  (which differs from corpus to corpus) does not enter the statistics, nor the rhythm (measured
  between the first and last sounding frame);
- the descriptors are not normalised here: `w2v2.emotion.travel` standardises them per speaker or per
  recording set, which is where cross-corpus robustness comes from (docs/travel.md).
"""

from __future__ import annotations

import math

import torch
import torchaudio

from w2v2.config import SAMPLE_RATE

HOP = 160  # 10 ms
N_FFT, WIN = 512, 400
MIN_CLIP = 1600  # samples (0.1 s): shorter clips are zero-extended
MAX_SECONDS = 20.0  # a clip's descriptors come from its first 20 s (prediction windows are shorter)
NUM_DESCRIPTORS = 189
# added to the spectral powers before their logs, the clip at unit RMS: a floor about 16 dB under a speech
# clip's median mel band, so that bands a lossy codec zeroes (a low-bitrate MP3 drops whole bands in some
# frames) are not read as -100 dB swings. Models trained before it used 1e-10 (`TravelConfig.log_floor`)
FLOOR = 1e-2

_FREQS = torch.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
_MEL = torchaudio.functional.melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, 40, SAMPLE_RATE)  # (f, 40)
_DCT = torchaudio.functional.create_dct(13, 40, "ortho")  # (40, 13)


# where a recording's gain g shows in clip_descriptors' layout: every log power moves by log(g^2). The
# loudness track's mean, p10, p50 and p90 move by it, MFCC c0's mean by sqrt(40) times it (orthonormal
# DCT of 40 log-mel bands), the 40 log-mel means by it; all else (spreads, slopes, ratios, pitch, rhythm) stays
LOUDNESS_LEVELS = (0, 2, 3, 4)
LOUDNESS_MEDIAN = 3
MFCC0_MEAN = 64
MEL_MEANS = slice(103, 143)


def with_level(x: torch.Tensor, shift: float | torch.Tensor) -> torch.Tensor:
    """Descriptors (..., NUM_DESCRIPTORS) of the same speech recorded `shift` higher in log power (a gain g is
    2 log g): a float, or a tensor (..., 1) of one shift per row. Only the level-dependent ones move."""
    out = x.clone()
    out[..., list(LOUDNESS_LEVELS)] += shift
    out[..., MFCC0_MEAN] += math.sqrt(_MEL.shape[1]) * (shift[..., 0] if isinstance(shift, torch.Tensor) else shift)
    out[..., MEL_MEANS] += shift
    return out


def level_free(x: torch.Tensor) -> torch.Tensor:
    """Descriptors (..., NUM_DESCRIPTORS) less the recording's level: each level-dependent one taken relative
    to the clip's loudness median, so that the same speech at any gain gives the same numbers (the median
    itself becomes 0). For a lone clip, whose recording gain is unknown (docs/travel.md)."""
    if x.shape[-1] != NUM_DESCRIPTORS:
        raise ValueError(f"level_free: {x.shape[-1]} descriptors, not {NUM_DESCRIPTORS}")
    return with_level(x, -x[..., LOUDNESS_MEDIAN:LOUDNESS_MEDIAN + 1])


def power_spectrogram(wave: torch.Tensor) -> torch.Tensor:
    """(t, f) power spectrum of 25 ms Hann frames every 10 ms of wave (s,)."""
    window = torch.hann_window(WIN)
    spec = torch.stft(wave, N_FFT, HOP, WIN, window, center=True, return_complex=True)
    return spec.abs().pow(2).T


def autocorrelation_pitch(wave: torch.Tensor, frame: int = 640, fmin: float = 60.0, fmax: float = 500.0
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(f0 Hz (t,), normalised autocorrelation peak (t,)) of 40 ms frames every 10 ms of wave (s,)."""
    frames = wave.unfold(0, frame, HOP)
    frames = frames - frames.mean(1, keepdim=True)
    ac = torch.fft.irfft(torch.fft.rfft(frames, n=2 * frame).abs().pow(2))[:, :frame]
    ac = ac / ac[:, :1].clamp(min=1e-8)
    lo, hi = int(SAMPLE_RATE // fmax), int(SAMPLE_RATE // fmin)
    peak, lag = ac[:, lo:hi].max(1)
    return SAMPLE_RATE / (lag + lo).float(), peak


def functionals(x: torch.Tensor) -> torch.Tensor:
    """(8,): mean, sd, p10, p50, p90, p90-p10, slope over time, skewness of a descriptor track (t,)."""
    if x.numel() < 2:
        return torch.zeros(8)
    q = torch.quantile(x, torch.tensor([0.1, 0.5, 0.9]))
    mean, sd = x.mean(), x.std(unbiased=False).clamp(min=1e-6)
    t = torch.linspace(-1, 1, x.numel())
    slope = (t * (x - mean)).sum() / (t * t).sum()
    skew = ((x - mean) ** 3).mean() / sd**3
    return torch.stack([mean, sd, q[0], q[1], q[2], q[2] - q[0], slope, skew.clamp(-10, 10)])


def run_lengths(mask: torch.Tensor) -> torch.Tensor:
    """Lengths (frames, float) of the runs of True in mask (t,)."""
    edges = torch.diff(torch.cat([torch.zeros(1), mask.float(), torch.zeros(1)]))
    return ((edges == -1).nonzero()[:, 0] - (edges == 1).nonzero()[:, 0]).float()


def rhythm(voiced: torch.Tensor, sounding: torch.Tensor) -> torch.Tensor:
    """(6,): voiced and sounding shares, voiced segments per second, their mean length and sd, mean pause;
    between the first and the last sounding frame (leading and trailing silence, which differ from corpus
    to corpus and fill a window around a short sentence, are not the speaker's rhythm)."""
    idx = sounding.nonzero()[:, 0]
    if len(idx):
        voiced, sounding = voiced[int(idx[0]):int(idx[-1]) + 1], sounding[int(idx[0]):int(idx[-1]) + 1]
    segments, pauses = run_lengths(voiced), run_lengths(~sounding)
    seconds = voiced.numel() * HOP / SAMPLE_RATE
    return torch.tensor([voiced.float().mean(), sounding.float().mean(), len(segments) / seconds,
                         segments.mean() if len(segments) else 0.0, pauses.mean() if len(pauses) else 0.0,
                         segments.std() if len(segments) > 1 else 0.0])


@torch.no_grad()
def clip_descriptors(wave: torch.Tensor, floor: float = FLOOR) -> torch.Tensor:
    """(NUM_DESCRIPTORS,) float32 descriptors of a 16 kHz clip (s,) (its first MAX_SECONDS); `floor`: the one
    its model was trained with."""
    wave = wave.float()[: int(SAMPLE_RATE * MAX_SECONDS)]
    wave = wave - wave.mean() if wave.numel() else wave  # a recorder's DC offset is not the voice (+0.5 had made
    if wave.numel() < MIN_CLIP:  # every RAVDESS clip "disgust")
        wave = torch.nn.functional.pad(wave, (0, MIN_CLIP - wave.numel()))
    # computed on the clip at unit RMS, its level added back to the level descriptors: the floors below
    # (`floor`) are then relative to the clip, and `level_free` descriptors are the same at any gain
    rms = float(wave.pow(2).mean().sqrt())
    return with_level(_descriptors(wave / rms, floor), 2 * math.log(rms)) if rms > 0 else _descriptors(wave, floor)


def _descriptors(wave: torch.Tensor, floor: float) -> torch.Tensor:
    power = power_spectrogram(wave)
    f0, peak = autocorrelation_pitch(wave)
    t = min(len(f0), len(power))
    power, f0, peak = power[:t], f0[:t], peak[:t]
    mel = (power @ _MEL + floor).log()
    mfcc = mel @ _DCT
    loudness = (power.sum(1) + floor).log()
    sounding = loudness > loudness.max() - math.log(10**3.5)
    voiced = (peak > 0.5) & sounding
    semitones = 12 * torch.log2(f0[voiced] / 100)
    low, high = _FREQS < 1000, (_FREQS >= 1000) & (_FREQS < 5000)
    centroid = (power * _FREQS).sum(1) / power.sum(1).clamp(min=1e-10) / 1000
    alpha = ((power[:, low].sum(1) + floor) / (power[:, high].sum(1) + floor)).log()
    hammarberg = ((power[:, _FREQS < 2000].amax(1) + floor) / (power[:, (_FREQS >= 2000) & (_FREQS < 5000)].amax(1)
                                                               + floor)).log()
    flux = torch.cat([torch.zeros(1), (mel[1:] - mel[:-1]).pow(2).mean(1)])
    s = sounding
    parts = [functionals(track[s]) for track in (loudness, centroid, alpha, hammarberg, flux, peak)]
    parts += [functionals(semitones), functionals((semitones[1:] - semitones[:-1]).abs())]
    m = mfcc[s]
    parts += [m.mean(0), m.std(0, unbiased=False),
              (m[1:] - m[:-1]).abs().mean(0) if len(m) > 1 else torch.zeros(13)]
    parts += [mel[s].mean(0), mel[s].std(0, unbiased=False), rhythm(voiced, sounding)]
    return torch.nan_to_num(torch.cat([p.float().flatten() for p in parts]))
