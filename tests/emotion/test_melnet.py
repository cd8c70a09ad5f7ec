"""The travelling model's log-mel CNNs (w2v2/emotion/melnet.py): the spectrogram, group statistics, and a
network that learns emotions (here: tones) from spectrograms standardised per speaker."""

from __future__ import annotations

import math

import pytest
import torch

from w2v2.emotion.descriptors import clip_descriptors
from w2v2.emotion.melnet import BANDS, group_scales, log_mel, moments
from w2v2.emotion.travel import TravelConfig, fit, load_travel, save_travel


def tone(f0: float, seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(16000 * seconds)) / 16000
    wave = sum(torch.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 6))
    return 0.1 * wave + 0.005 * torch.randn(len(t), generator=g)


def test_the_spectrogram_ignores_gain_and_marks_the_sounding_frames() -> None:
    wave = torch.cat([tone(200.0, 0.5), torch.zeros(8000)])
    mel = log_mel(wave)
    assert mel.spec.shape == (BANDS, 101) and mel.loud.dtype == torch.bool
    torch.testing.assert_close(log_mel(wave * 30).spec, mel.spec, atol=1e-4, rtol=0)
    assert bool(mel.loud[:45].all()) and not bool(mel.loud[55:].any())  # the tone's half sounds, the silence not


def test_group_statistics_count_each_window_once_and_shrink_toward_the_set() -> None:
    mels = [log_mel(tone(f, 1.0, seed=i)) for i, f in enumerate((150.0, 160.0, 400.0, 420.0))]
    m1, m2 = moments(mels)
    groups = ["low", "low", "high", "high"]
    mean, sd = group_scales(m1, m2, groups)
    own = torch.cat([mels[0].spec[:, mels[0].loud], mels[1].spec[:, mels[1].loud]], 1)
    # two windows of about the same length: their group's frames pooled, near enough
    torch.testing.assert_close(mean[0], own.mean(1), atol=0.05, rtol=0)
    assert torch.equal(mean[0], mean[1]) and not torch.allclose(mean[0], mean[2])
    set_mean, _ = group_scales(m1, m2, ["set"] * 4)
    far, _ = group_scales(m1, m2, groups, prior=1e6)
    torch.testing.assert_close(far, set_mean, atol=1e-4, rtol=0)  # a huge prior: the set's statistics
    half, _ = group_scales(m1, m2, groups, prior=2.0)  # a prior worth the group's own two windows: halfway
    torch.testing.assert_close(half[0], (mean[0] + set_mean[0]) / 2, atol=1e-5, rtol=0)


def voices(speakers: range, per_class: int = 3) -> tuple[list[torch.Tensor], list[int], list[str]]:
    """Three "emotions" as noise in three frequency regions (0: 200-1000 Hz, 1: 1-3 kHz, 2: 3-6 kHz) over a
    little broadband noise, each speaker heard through its own channel: a spectral tilt of up to +-12 dB per
    octave, which alone moves a region's level more than the emotions do."""
    freqs = torch.fft.rfftfreq(16000, 1 / 16000)
    regions = ((200, 1000), (1000, 3000), (3000, 6000))
    waves, labels, names = [], [], []
    for s in speakers:
        g = torch.Generator().manual_seed(1000 + s)
        tilt = (torch.rand(1, generator=g) * 2 - 1) * 12 / 20 * math.log(10) / math.log(2)  # per octave, in e-folds
        channel = torch.exp(tilt * torch.log2(freqs.clamp_min(50) / 1000))
        for label, (lo, hi) in enumerate(regions):
            for _ in range(per_class):
                shape = 0.3 + 3.0 * ((freqs >= lo) & (freqs < hi)).float()
                spectrum = torch.fft.rfft(torch.randn(16000, generator=g)) * shape * channel
                wave = torch.fft.irfft(spectrum, n=16000)
                waves.append(0.1 * wave / wave.pow(2).mean().sqrt())
                labels.append(label)
                names.append(f"v{s}")
    return waves, labels, names


def test_the_cnn_learns_emotions_of_unseen_speakers_from_spectrograms_and_survives_a_save(tmp_path) -> None:
    waves, labels, speakers = voices(range(0, 12, 2))
    x = torch.stack([clip_descriptors(w) for w in waves])
    cfg = TravelConfig(epochs=2, mel_nets=1, mel_epochs=5, mel_weight=1.0, heads=1)
    model = fit(x, labels, ["tones"] * len(labels), speakers, cfg, mels=[log_mel(w) for w in waves])
    test, truth, test_speakers = voices(range(1, 12, 2))
    xt, mt = torch.stack([clip_descriptors(w) for w in test]), [log_mel(w) for w in test]
    with pytest.raises(ValueError, match="also reads log-mel spectrograms: pass mels"):
        model.probs(xt, test_speakers)
    probs = model.probs(xt, test_speakers, mels=mt)
    accuracy = float((probs[:, :3].argmax(1) == torch.tensor(truth)).float().mean())
    assert accuracy >= 0.8, accuracy  # chance: 1/3
    # a lone clip is answered by the lone-clip heads alone: the CNNs need a group's statistics
    alone = model.probs(xt[:2], mels=mt[:2])
    torch.testing.assert_close(alone, model.mean_softmax(model.clip_heads, (model.clip_input(xt[:2]) - model.pool_mean)
                                                          / model.pool_std))
    save_travel(model, tmp_path / "m", {})
    again, info = load_travel(tmp_path / "m")
    assert info["config"]["mel_nets"] == 1
    torch.testing.assert_close(again.probs(xt, test_speakers, mels=mt), probs)


def test_fitting_with_cnns_needs_the_spectrograms() -> None:
    waves, labels, speakers = voices(range(2), per_class=1)
    x = torch.stack([clip_descriptors(w) for w in waves])
    with pytest.raises(ValueError, match="mel_nets=1: pass mels"):
        fit(x, labels, ["tones"] * len(labels), speakers, TravelConfig(mel_nets=1))
