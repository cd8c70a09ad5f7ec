"""Source-filter voice synthesis (Fant, 1960; Klatt, 1980), vectorised with numpy.

Design choices:
- Source: glottal pulses placed at fractional times by integrating a jittered F0 track, each a
  short windowed-sinc (band-limited impulse), with shimmer (pulse-to-pulse amplitude) and
  aspiration noise gated by the glottal cycle; frication noise for consonants.
- Filter: applied frame by frame in the STFT domain (512-point Hann, hop 128, overlap-add):
  the product of Klatt-style two-pole formant resonances (F1..F4 with bandwidths) and a glottal
  spectral tilt. A per-sample IIR with time-varying coefficients would be exact but needs a
  Python loop per sample; this is fast enough to write hundreds of clips in seconds.
"""

from __future__ import annotations

import numpy as np

from w2v2.config import SAMPLE_RATE

SR = SAMPLE_RATE
N_FFT, HOP = 512, 128
FREQS = np.fft.rfftfreq(N_FFT, 1.0 / SR)  # (257,)


def glottal_source(f0: np.ndarray, jitter: float, shimmer: float, rng: np.random.Generator) -> np.ndarray:
    """Pulse train (s,) for a per-sample F0 track (Hz, 0 = unvoiced)."""
    n = f0.size
    out: np.ndarray = np.zeros(n)
    voiced = f0 > 0
    if not voiced.any():
        return out
    phase = np.cumsum(np.where(voiced, f0, 0.0) / SR)
    # Cycle-to-cycle jitter: perturb each period; pulses at the crossings of integer phase.
    cycles = np.arange(np.ceil(phase[0]), np.floor(phase[-1]) + 1)
    if cycles.size == 0:
        return out
    times = np.interp(cycles, phase, np.arange(n, dtype=float))
    period = SR / np.maximum(np.interp(times, np.arange(n), f0), 1.0)
    times = times + rng.normal(0.0, jitter, times.size) * period
    times = times[(times >= 0) & (times < n - 1) & voiced[np.clip(times.astype(int), 0, n - 1)]]
    amps = np.exp(rng.normal(0.0, shimmer, times.size))
    taps = np.arange(-8, 8)
    base = np.floor(times).astype(int)
    frac = times - base
    kernel = np.sinc(taps[None, :] - frac[:, None]) * np.hanning(18)[1:-1][None, :]
    idx = np.clip(base[:, None] + taps[None, :] + 8, 0, n + 15)
    out = np.bincount(idx.ravel(), weights=(kernel * amps[:, None]).ravel(), minlength=n + 16)
    return out[8:n + 8]


def formant_response(formants: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """|H(f)| (frames, 257) of cascaded unity-DC-gain resonators; formants, bandwidths (frames, n)."""
    w = 2 * np.pi * FREQS / SR
    r = np.exp(-np.pi * bandwidths / SR)[..., None]  # (frames, n, 1)
    theta = (2 * np.pi * formants / SR)[..., None]
    z1 = np.exp(-1j * w)[None, None, :]
    denom = np.abs(1 - 2 * r * np.cos(theta) * z1 + r**2 * z1**2)
    gain = 1 - 2 * r * np.cos(theta) + r**2
    return np.prod(gain / denom, axis=1)


def tilt_response(tilt_db_per_octave: np.ndarray) -> np.ndarray:
    """(frames, 257) glottal spectral slope relative to 500 Hz (more negative = laxer, breathier)."""
    octaves = np.log2(np.maximum(FREQS, 50.0) / 500.0)
    return 10 ** (tilt_db_per_octave[:, None] * np.maximum(octaves, 0.0)[None, :] / 20)


def frication_response(centre: np.ndarray, width: np.ndarray) -> np.ndarray:
    """(frames, 257) band-pass shape of frication noise around `centre` Hz."""
    return np.exp(-0.5 * ((FREQS[None, :] - centre[:, None]) / width[:, None]) ** 2)


def stft(x: np.ndarray) -> np.ndarray:
    pad = np.pad(x, (N_FFT, N_FFT))
    frames = np.lib.stride_tricks.sliding_window_view(pad, N_FFT)[::HOP]
    return np.fft.rfft(frames * np.hanning(N_FFT), axis=-1)


def istft(spec: np.ndarray, n: int) -> np.ndarray:
    frames = np.fft.irfft(spec, n=N_FFT, axis=-1) * np.hanning(N_FFT)
    out = np.zeros(frames.shape[0] * HOP + N_FFT)
    norm = np.zeros_like(out)
    window_sq = np.hanning(N_FFT) ** 2
    for i, frame in enumerate(frames):  # overlap-add
        out[i * HOP:i * HOP + N_FFT] += frame
        norm[i * HOP:i * HOP + N_FFT] += window_sq
    return (out / np.maximum(norm, 1e-3))[N_FFT:N_FFT + n]


def frame_track(track: np.ndarray, num_frames: int) -> np.ndarray:
    """Sample a per-sample track (s, ...) at the STFT frame centres -> (frames, ...)."""
    centres = np.clip(np.arange(num_frames) * HOP - N_FFT + N_FFT // 2, 0, track.shape[0] - 1)
    return track[centres]


def render(f0: np.ndarray, voice_amp: np.ndarray, breath: np.ndarray, fric_amp: np.ndarray,
           formants: np.ndarray, bandwidths: np.ndarray, tilt: np.ndarray, fric_centre: np.ndarray,
           jitter: float, shimmer: float, rng: np.random.Generator) -> np.ndarray:
    """Synthesise (s,) audio from per-sample control tracks.

    f0 (s,) Hz; voice_amp, breath, fric_amp (s,) linear; formants, bandwidths (s, 4) Hz;
    tilt (s,) dB/octave; fric_centre (s,) Hz.
    """
    n = f0.size
    pulses = glottal_source(f0, jitter, shimmer, rng)
    noise = rng.standard_normal(n)
    # Aspiration follows the glottal cycle (louder in the open phase): noise modulated by the pulses.
    cycle = np.convolve(np.abs(pulses), np.hanning(41), mode="same")
    aspiration = noise * breath * (0.4 + cycle / (cycle.max() + 1e-9))
    voiced = pulses * voice_amp
    v_spec, a_spec, f_spec = stft(voiced), stft(aspiration), stft(noise * fric_amp)
    frames = v_spec.shape[0]
    tract = formant_response(frame_track(formants, frames), frame_track(bandwidths, frames))
    tilt_r = tilt_response(frame_track(tilt, frames))
    fric_centres = frame_track(fric_centre, frames)
    fric = frication_response(fric_centres, 0.35 * fric_centres)
    spec = v_spec * tract * tilt_r + a_spec * tract * 0.5 + f_spec * fric
    return istft(spec, n)
