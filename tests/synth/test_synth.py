"""The synthetic emotional-speech corpus: determinism, layout, speech-likeness, learnability."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from w2v2.synth.corpus import F0_RANGE, generate_corpus, make_speaker, synthesize_clip
from w2v2.synth.voice import SR, render


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path) -> None:
    a = generate_corpus(tmp_path / "a", clips=24, speakers=4, seed=3)
    generate_corpus(tmp_path / "b", clips=24, speakers=4, seed=3, workers=1)
    generate_corpus(tmp_path / "c", clips=24, speakers=4, seed=4)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")
    assert a["train"] + a["test"] == 24


def test_competition_layout_with_disjoint_speakers(tmp_path) -> None:
    generate_corpus(tmp_path, clips=36, speakers=6, seed=0)
    train = pd.read_csv(tmp_path / "train.csv")
    test = pd.read_csv(tmp_path / "test.csv")
    sub = pd.read_csv(tmp_path / "sample_submission.csv")
    labels = pd.read_csv(tmp_path / "test_labels.csv")
    assert list(train.columns[:3]) == ["id", "path", "label"] and list(test.columns) == ["id", "path"]
    assert list(sub.columns) == ["id", "label"] and list(sub.id) == list(test.id) == list(labels.id)
    assert set(train.speaker).isdisjoint(set(labels.speaker))
    assert set(train.label) == set(range(6)) and train.label.between(0, 5).all()
    for rel in list(train.path) + list(test.path):
        info = sf.info(tmp_path / rel)
        assert info.samplerate == 16000 and info.channels == 1 and 1.5 <= info.duration <= 5.0


def autocorr_pitch(wave: np.ndarray, frame: int = 640, hop: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """(f0 per frame in Hz, voiced flag per frame) by normalised autocorrelation, 60-500 Hz,
    of the low-passed frame, corrected for the window's own autocorrelation."""
    frames = np.lib.stride_tricks.sliding_window_view(wave, frame)[::hop] * np.hanning(frame)
    spec = np.fft.rfft(frames, n=2 * frame, axis=-1)
    spec[:, int(900 * 2 * frame / SR):] = 0  # low-pass: keep formants above F1 out of the periodicity
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=-1)[:, :frame]
    window_ac = np.fft.irfft(np.abs(np.fft.rfft(np.hanning(frame), n=2 * frame)) ** 2)[:frame]
    ac = ac / np.maximum(ac[:, :1], 1e-12) / (window_ac / window_ac[0])  # Boersma (1993) correction
    lo, hi = SR // 500, SR // 60
    region = ac[:, lo:hi]
    peak = (region[:, 1:-1] > region[:, :-2]) & (region[:, 1:-1] >= region[:, 2:])
    good = peak & (region[:, 1:-1] >= 0.85 * region.max(-1, keepdims=True))  # octave cost: prefer short lags
    lag = lo + 1 + np.where(good.any(-1), good.argmax(-1), region[:, 1:-1].argmax(-1))
    energy = 10 * np.log10(np.mean(frames**2, axis=-1) + 1e-12)
    voiced = (ac[np.arange(len(lag)), lag] > 0.6) & (energy > energy.max() - 30)
    return SR / lag, voiced


def test_voiced_frames_have_the_synthesised_pitch() -> None:
    errors, in_range = [], []
    for emotion in range(6):
        speaker = make_speaker(emotion, seed=0)
        wave, info = synthesize_clip(emotion, speaker, np.random.default_rng(emotion), seconds=3.0)
        f0_hat, voiced = autocorr_pitch(wave.astype(np.float64))
        true = info["f0"][np.arange(len(f0_hat)) * 160 + 320]
        sel = voiced & (true > 0)
        assert sel.sum() > 0.5 * (true > 0).sum()  # most voiced frames are detected as voiced
        lo, hi = info["f0"][info["f0"] > 0].min(), info["f0"].max()  # this clip's configured pitch range
        in_range.append((f0_hat[sel] >= 0.8 * lo) & (f0_hat[sel] <= 1.25 * hi))
        errors.append(np.abs(f0_hat[sel] / true[sel] - 1))
    err, in_range = np.concatenate(errors), np.concatenate(in_range)
    assert F0_RANGE[0] <= lo and hi <= F0_RANGE[1]
    assert in_range.mean() > 0.7  # the rest are octave errors of the simple tracker
    assert np.median(err) < 0.04 and np.mean(err < 0.1) > 0.65


def strongest_harmonic(harmonics: np.ndarray, amps: np.ndarray, lo: float, hi: float) -> float:
    sel = (harmonics >= lo) & (harmonics <= hi)
    return float(harmonics[sel][amps[sel].argmax()])


def test_spectral_envelope_peaks_at_the_formants() -> None:
    rng = np.random.default_rng(0)
    n, f0 = SR, 100.0
    for f1, f2 in [(730.0, 1090.0), (270.0, 2290.0), (530.0, 1840.0)]:
        wave = render(f0=np.full(n, f0), voice_amp=np.ones(n), breath=np.zeros(n), fric_amp=np.zeros(n),
                      formants=np.tile([f1, f2, 2800.0, 3500.0], (n, 1)),
                      bandwidths=np.tile([60.0, 90, 120, 150], (n, 1)), tilt=np.full(n, -6.0),
                      fric_centre=np.full(n, 4000.0), jitter=0.0, shimmer=0.0, rng=rng)
        spectrum = np.abs(np.fft.rfft(wave[2000:-2000] * np.hanning(n - 4000)))
        freqs = np.fft.rfftfreq(n - 4000, 1 / SR)
        harmonics = np.arange(1, 40) * f0
        amps = np.array([spectrum[np.abs(freqs - h) < 3].max() for h in harmonics])
        assert abs(strongest_harmonic(harmonics, amps, 150, 1000) - f1) <= f0
        assert abs(strongest_harmonic(harmonics, amps, max(f1 + 300, 800), 2600) - f2) <= f0


def prosodic_features(path: Path) -> np.ndarray:
    """Pitch level/spread/range, energy level/spread, voiced fraction, syllable rate, spectral tilt."""
    wave, _ = sf.read(path, dtype="float64")
    f0, voiced = autocorr_pitch(wave)
    st = 12 * np.log2(f0[voiced] / 100.0) if voiced.sum() > 2 else np.zeros(3)
    frames = np.lib.stride_tricks.sliding_window_view(wave, 640)[::160]
    energy = 10 * np.log10(np.mean(frames**2, -1) + 1e-10)
    loud = energy > energy.max() - 35
    envelope = np.convolve(energy, np.ones(5) / 5, mode="same")
    peaks = ((envelope[1:-1] > envelope[:-2]) & (envelope[1:-1] >= envelope[2:]) & loud[1:-1]).sum()
    spec = np.abs(np.fft.rfft(frames[voiced] if voiced.any() else frames, axis=-1)) ** 2
    tilt = np.log10(spec[:, 40:160].sum() / max(spec[:, 8:40].sum(), 1e-12))  # 1-4 kHz vs 200-1000 Hz
    return np.array([np.median(st), st.std(), np.percentile(st, 90) - np.percentile(st, 10),
                     energy[loud].mean(), energy[loud].std(), voiced.mean(), peaks / (len(wave) / SR), tilt])


def classical_accuracy(corpus: Path) -> float:
    """Multinomial logistic regression on prosodic statistics; train speakers -> test speakers."""
    train = pd.read_csv(corpus / "train.csv")
    test = pd.read_csv(corpus / "test_labels.csv").merge(pd.read_csv(corpus / "test.csv"), on="id")
    xs = [torch.tensor(np.stack([prosodic_features(corpus / p) for p in df.path]), dtype=torch.float64)
          for df in (train, test)]
    mean, std = xs[0].mean(0), xs[0].std(0) + 1e-9
    x_train, x_test = [(x - mean) / std for x in xs]
    y_train = torch.tensor(train.label.values)
    w = torch.zeros(x_train.shape[1], 6, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x_train @ w + b, y_train) + 1e-2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    pred = (x_test @ w + b).argmax(-1).numpy()
    return float((pred == test.label.values).mean())


@pytest.mark.slow
def test_prosody_classifier_is_above_chance_but_not_perfect(tmp_path) -> None:
    generate_corpus(tmp_path, clips=480, speakers=16, seed=0, test_fraction=0.25)
    acc = classical_accuracy(tmp_path)
    print(f"classical prosodic classifier, test-speaker accuracy: {acc:.3f} (chance 0.167)")
    assert 0.27 < acc < 0.90  # chance is 0.167; 0.27 is 3 binomial sigmas above it on 120 test clips


if __name__ == "__main__":
    import sys

    print(f"accuracy on {sys.argv[1]}: {classical_accuracy(Path(sys.argv[1])):.3f}")
