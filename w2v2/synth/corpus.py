"""A built-in synthetic emotional-speech corpus: learnable, not trivial, zero downloads.

`python -m w2v2.synth OUT_DIR [--clips N --speakers S --seed K]` writes the competition layout
(train/, test/, train.csv, test.csv, sample_submission.csv, test_labels.csv), with train and
test speakers disjoint. Deterministic for a seed (each clip has its own seed derived from it).

Speech: syllables of consonant (stop, fricative or nasal) + vowel (Peterson & Barney, 1952 formant
targets) with coarticulated formant transitions, phrases separated by pauses, an F0 contour of
declination, pitch accents and a final rise or fall, rendered by the source-filter engine in
`w2v2/synth/voice.py`.

Speakers: sex, vocal-tract length (formant scaling), pitch level and range, speaking rate,
breathiness, jitter, recording gain and "expressiveness" (how strongly they show emotion).

Emotions change prosody and voice quality in the directions reported in the literature (Murray
& Arnott, 1993; Banse & Scherer, 1996; Scherer, 2003): pitch level, range and final contour,
speaking rate, intensity and its variability, spectral tilt (tense vs lax/breathy voice), jitter
and pause length. Per-clip variability and per-speaker expressiveness make classes overlap, so no
single statistic separates them.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from w2v2.data.audio import save_audio
from w2v2.data.labels import EMOTIONS
from w2v2.synth.voice import SR, render
from w2v2.training.progress import progress_bar

VOWELS = np.array([[270, 2290, 3010], [390, 1990, 2550], [530, 1840, 2480], [660, 1720, 2410],
                   [730, 1090, 2440], [570, 840, 2410], [440, 1020, 2240], [300, 870, 2240],
                   [640, 1190, 2390], [490, 1350, 1690]], dtype=float)  # adult male F1-F3, Hz
F0_RANGE = (60.0, 500.0)  # every F0 the synthesiser produces lies in this range


@dataclass(frozen=True)
class Emotion:
    """Multipliers/offsets relative to a speaker's neutral voice."""

    pitch: float  # F0 level factor
    range: float  # F0 excursion factor
    rate: float  # syllables per second factor
    gain_db: float  # intensity
    gain_var: float  # syllable-to-syllable intensity variation (dB, std)
    tilt_db: float  # added spectral slope above 500 Hz (negative = laxer)
    breath: float  # aspiration factor
    jitter: float  # jitter factor
    final_rise: float  # probability that a phrase ends rising
    pause: float  # pause length factor


EMOTION_PARAMS: dict[str, Emotion] = {
    "angry": Emotion(1.25, 1.5, 1.12, 6.0, 3.5, 3.0, 0.6, 1.3, 0.1, 0.8),
    "fear": Emotion(1.4, 1.25, 1.2, 1.0, 2.0, -1.0, 1.6, 2.2, 0.5, 1.0),
    "sad": Emotion(0.9, 0.55, 0.78, -5.0, 1.0, -4.0, 1.8, 1.2, 0.15, 1.6),
    "disgust": Emotion(0.92, 1.1, 0.8, -1.0, 2.5, -1.0, 1.0, 1.8, 0.1, 1.2),
    "neutral": Emotion(1.0, 1.0, 1.0, 0.0, 1.5, 0.0, 1.0, 1.0, 0.2, 1.0),
    "happy": Emotion(1.18, 1.45, 1.06, 3.0, 2.5, 1.5, 0.9, 1.0, 0.45, 0.9),
}


@dataclass(frozen=True)
class Speaker:
    index: int
    female: bool
    f0: float  # neutral mean F0, Hz
    f0_range: float  # neutral excursion, semitones
    tract: float  # formant scale (shorter vocal tract -> higher formants)
    rate: float  # neutral syllables per second
    breath: float
    jitter: float
    gain_db: float  # recording level
    expressiveness: float  # 0..1+: how much of each emotion's deviation this speaker shows


def make_speaker(index: int, seed: int) -> Speaker:
    rng = np.random.default_rng([seed, 1_000_003, index])
    female = index % 2 == 1
    return Speaker(
        index=index, female=female,
        f0=rng.normal(205, 22) if female else rng.normal(115, 14),
        f0_range=rng.uniform(2.5, 5.0), tract=(1.16 if female else 1.0) * rng.uniform(0.95, 1.05),
        rate=rng.uniform(3.6, 5.2), breath=rng.uniform(0.01, 0.04) * (1.4 if female else 1.0),
        jitter=rng.uniform(0.005, 0.015), gain_db=rng.normal(0, 3), expressiveness=rng.uniform(0.6, 1.2),
    )


def _blend(emotion: Emotion, amount: float) -> Emotion:
    """The speaker shows `amount` of the emotion's deviation from neutral (log scale for factors)."""
    neutral = EMOTION_PARAMS["neutral"]
    vals = {}
    for f in Emotion.__dataclass_fields__:
        e, n = getattr(emotion, f), getattr(neutral, f)
        multiplicative = f in ("pitch", "range", "rate", "breath", "jitter", "pause")
        vals[f] = n * (e / n) ** amount if multiplicative else n + (e - n) * amount
    return Emotion(**vals)


def _plan_syllables(dur: float, syll_rate: float, pause: float, rng: np.random.Generator) -> list[tuple]:
    """[(start_s, consonant_s, vowel_s, kind, vowel_index, phrase_index, is_last_in_phrase)]."""
    out, t, phrase = [], rng.uniform(0.08, 0.25), 0
    while t < dur - 0.3:
        n_syll = rng.integers(3, 8)
        for i in range(n_syll):
            length = rng.gamma(8.0, 1.0 / (8.0 * syll_rate))
            cons = length * rng.uniform(0.25, 0.45)
            if t + length > dur - 0.1:
                break
            out.append((t, cons, length - cons, rng.integers(0, 3), rng.integers(0, len(VOWELS)), phrase,
                        i == n_syll - 1))
            t += length
        t += rng.uniform(0.15, 0.4) * pause
        phrase += 1
    if out:
        out[-1] = out[-1][:6] + (True,)
    return out


def _box(x: np.ndarray, k: int) -> np.ndarray:
    """Moving average of length k along axis 0 (edges held), O(n) by cumulative sums."""
    pad = np.pad(x, [(k // 2, k - k // 2)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    c = np.cumsum(pad, axis=0)
    c = np.concatenate([np.zeros_like(c[:1]), c])
    return (c[k:k + x.shape[0]] - c[:x.shape[0]]) / k


def _smooth(x: np.ndarray, ms: float) -> np.ndarray:
    """Triangular smoothing over about `ms` milliseconds (two box filters)."""
    k = max(int(SR * ms / 2000), 1)
    return _box(_box(x, k), k)


def _segments(plan: list[tuple], speaker: Speaker, emo: Emotion, n: int,
              rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-sample control tracks for the planned syllables."""
    tr = {k: np.zeros(n) for k in ("voice", "fric", "f0_st", "gain_db", "centre")}
    tr["centre"][:] = 4000.0
    formants = np.tile(np.array([500.0, 1500.0, 2500.0, 3500.0]) * speaker.tract, (n, 1))
    span = speaker.f0_range * emo.range
    phrase_len = {p: sum(1 for s in plan if s[5] == p) for p in {s[5] for s in plan}}
    position: dict[int, int] = {}  # phrase index -> syllables so far
    for start, cons, vowel, kind, v, phrase, last in plan:
        i = position[phrase] = position.get(phrase, -1) + 1
        a, b, c = (int(x * SR) for x in (start, start + cons, start + cons + vowel))
        b, c = min(b, n), min(c, n)
        decl = span * (0.35 - 0.7 * i / max(phrase_len[phrase] - 1, 1))  # declination over the phrase
        accent = span * rng.uniform(0.4, 1.0) if rng.random() < 0.35 else 0.0
        final = 0.0
        if last:
            final = span * 0.8 if rng.random() < emo.final_rise else -span * 0.6
        tr["f0_st"][a:c] = decl + accent + np.linspace(0, final, c - a)
        tr["gain_db"][a:c] = emo.gain_db + rng.normal(0, emo.gain_var) + 0.4 * accent
        tr["voice"][b:c] = 1.0
        target = np.append(VOWELS[v] * speaker.tract * rng.uniform(0.94, 1.06, 3), 3500 * speaker.tract)
        formants[b:c] = target
        locus = np.array([300.0, rng.choice([900.0, 1700.0, 2300.0]), 2600.0, 3500.0]) * speaker.tract
        formants[a:b] = locus
        if kind == 0:  # fricative
            tr["fric"][a:b] = rng.uniform(0.05, 0.12)
            tr["centre"][a:b] = rng.uniform(2500, 6500)
        elif kind == 1:  # stop: closure, then a short burst
            burst = max(b - int(0.015 * SR), a)
            tr["fric"][burst:b] = 0.25
            tr["centre"][burst:b] = rng.uniform(1500, 4500)
        else:  # nasal murmur: weak voicing with a low first formant
            tr["voice"][a:b] = 0.3
            formants[a:b, 0] = 250.0
    tr["formants"] = _smooth(formants, 40)  # coarticulation: formants glide between targets
    return tr


def synthesize_clip(emotion: int, speaker: Speaker, rng: np.random.Generator,
                    seconds: float | None = None) -> tuple[np.ndarray, dict]:
    """One utterance: (float32 waveform at 16 kHz, info with the F0 track and its emotion params)."""
    amount = speaker.expressiveness * rng.uniform(0.7, 1.2)
    emo = _blend(EMOTION_PARAMS[EMOTIONS[emotion]], amount)
    seconds = seconds if seconds is not None else float(rng.uniform(1.5, 5.0))
    n = int(seconds * SR)
    rate = speaker.rate * emo.rate * rng.normal(1.0, 0.07)
    plan = _plan_syllables(seconds, rate, emo.pause, rng)
    tr = _segments(plan, speaker, emo, n, rng)
    drift = _smooth(rng.normal(0, 1.0, n), 300) * 8  # slow random F0 wander, in semitones
    base = speaker.f0 * emo.pitch * rng.normal(1.0, 0.05)
    f0_smooth = base * 2 ** ((_smooth(tr["f0_st"], 60) + drift) / 12)
    voiced = _smooth(tr["voice"], 12)
    f0 = np.where(voiced > 0.05, np.clip(f0_smooth, *F0_RANGE), 0.0)
    gain = 10 ** (_smooth(tr["gain_db"], 50) / 20)
    bandwidths = np.array([60.0, 90.0, 130.0, 170.0]) * (1 + 4 * speaker.breath * emo.breath)
    tilt = np.full(n, (-12.0 if speaker.female else -10.0) + emo.tilt_db)
    wave = render(f0=f0, voice_amp=voiced * gain, breath=speaker.breath * emo.breath * voiced * gain * 3,
                  fric_amp=_smooth(tr["fric"], 5) * gain, formants=tr["formants"],
                  bandwidths=np.tile(bandwidths, (n, 1)), tilt=tilt, fric_centre=tr["centre"],
                  jitter=speaker.jitter * emo.jitter, shimmer=0.04 * emo.jitter**0.5, rng=rng)
    wave = wave * 0.04 / (np.sqrt(np.mean(wave[voiced > 0.5] ** 2)) if (voiced > 0.5).any() else 1.0)
    wave = wave * 10 ** ((emo.gain_db + speaker.gain_db) / 20) + rng.normal(0, 1e-4, n)
    wave = np.clip(wave, -0.99, 0.99).astype(np.float32)
    return wave, {"f0": f0, "emotion": emo, "plan": plan}


def _clip_job(job: tuple[int, int, int, str]) -> tuple[int, float]:
    """Worker: synthesise clip `index` (its own seed) and write it; returns (index, seconds)."""
    index, speaker_index, emotion, path = job
    seed = int(os.environ.get("W2V2_SYNTH_SEED", "0"))
    wave, _ = synthesize_clip(emotion, make_speaker(speaker_index, seed), np.random.default_rng([seed, index]))
    save_audio(path, wave, SR)
    return index, wave.size / SR


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)


def generate_corpus(out_dir: str | Path, clips: int = 600, speakers: int = 24, seed: int = 0,
                    test_fraction: float = 0.25, workers: int | None = None) -> dict:
    """Write the competition layout to `out_dir`; returns a summary dict.

    Speakers are split (test speakers never in train); emotions are balanced within each speaker.
    """
    if speakers < 2 or clips < 2 * 6:
        raise ValueError("need at least 2 speakers and 12 clips (train and test, six emotions)")
    out = Path(out_dir)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "test").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 7])
    order = rng.permutation(speakers)
    n_test = min(max(1, round(speakers * test_fraction)), speakers - 1)
    test_speakers = {int(s) for s in order[:n_test]}
    jobs, rows = [], []
    for i in range(clips):
        speaker = i % speakers
        emotion = int((i // speakers + speaker) % 6)
        split = "test" if speaker in test_speakers else "train"
        clip_id = f"{split}_{i:05d}"
        rel = f"{split}/{clip_id}.wav"
        jobs.append((i, speaker, emotion, str(out / rel)))
        rows.append((clip_id, rel, emotion, f"spk{speaker:03d}", split))
    os.environ["W2V2_SYNTH_SEED"] = str(seed)
    workers = workers or min(2, os.cpu_count() or 1)
    start = time.perf_counter()
    seconds = 0.0
    bar = progress_bar(total=clips, desc="synthesising", unit="clip", disable=None)
    if workers > 1:
        with get_context("fork").Pool(workers) as pool:
            for _, dur in pool.imap_unordered(_clip_job, jobs, chunksize=8):
                seconds += dur
                bar.update()
    else:
        for job in jobs:
            seconds += _clip_job(job)[1]
            bar.update()
    bar.close()
    train = [[r[0], r[1], r[2], r[3]] for r in rows if r[4] == "train"]
    test = [r for r in rows if r[4] == "test"]
    _write_csv(out / "train.csv", ["id", "path", "label", "speaker"], train)
    _write_csv(out / "test.csv", ["id", "path"], [[r[0], r[1]] for r in test])
    _write_csv(out / "sample_submission.csv", ["id", "label"], [[r[0], 4] for r in test])
    _write_csv(out / "test_labels.csv", ["id", "label", "speaker"], [[r[0], r[2], r[3]] for r in test])
    return {"dir": str(out), "train": len(train), "test": len(test), "speakers": speakers,
            "test_speakers": sorted(test_speakers), "hours": seconds / 3600,
            "wall_s": time.perf_counter() - start}


def plot_spectrograms(path: str | Path, seed: int = 0, speaker_index: int = 1) -> Path:
    """A PNG with one clip per emotion from the same speaker (log-magnitude spectrograms)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speaker = make_speaker(speaker_index, seed)
    fig, axes = plt.subplots(2, 3, figsize=(15, 7), sharey=True)
    for e, ax in enumerate(axes.flat):
        wave, info = synthesize_clip(e, speaker, np.random.default_rng([seed, 99, e]), seconds=2.5)
        ax.specgram(wave, NFFT=512, Fs=SR, noverlap=384, cmap="magma", vmin=-140)
        voiced = info["f0"] > 0
        t = np.arange(wave.size) / SR
        ax.plot(t[voiced], info["f0"][voiced], ",", color="cyan")
        ax.set_title(f"{EMOTIONS[e]} (F0 in cyan)")
        ax.set_ylim(0, 6000)
        ax.set_xlabel("s")
    axes[0, 0].set_ylabel("Hz")
    axes[1, 0].set_ylabel("Hz")
    fig.suptitle(f"w2v2.synth: one clip per emotion, speaker {speaker_index} "
                 f"({'female' if speaker.female else 'male'})")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m w2v2.synth", description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", type=Path, help="where to write the competition layout")
    p.add_argument("--clips", type=int, default=600)
    p.add_argument("--speakers", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=float, default=0.25)
    p.add_argument("--spectrograms", type=Path, help="also write a PNG of one clip per emotion here")
    args = p.parse_args(argv)
    summary = generate_corpus(args.out_dir, args.clips, args.speakers, args.seed, args.test_fraction)
    print(f"wrote {summary['train']} train + {summary['test']} test clips ({summary['hours']:.2f} h of audio, "
          f"{summary['speakers']} speakers, test speakers {summary['test_speakers']}) to {summary['dir']} "
          f"in {summary['wall_s']:.1f} s")
    if args.spectrograms:
        print(f"spectrograms: {plot_spectrograms(args.spectrograms, args.seed)}")
