"""Audio decoding: any file soundfile reads (wav/flac/ogg/mp3, any rate, mono or multichannel)
to a 16 kHz mono float32 tensor.

Design: decoding with soundfile (libsndfile) rather than torchaudio's I/O, which moved to
torchcodec in torchaudio 2.9; resampling with torchaudio.functional.resample (windowed sinc).
Every failure is an `AudioError` naming the file and the problem, never a bare traceback.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from w2v2.config import SAMPLE_RATE, FeatureEncoderConfig

__all__ = ["SAMPLE_RATE"]  # re-exported: the application reads the rate from here or from w2v2.config

# what libsndfile decodes, by the names files carry: WAV, FLAC, Ogg (Vorbis, Opus), MP3, AIFF, AU, CAF, W64
AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au",
                    ".caf", ".w64", ".rf64")
# audio that libsndfile cannot decode (AAC, WMA, AMR, video containers): found, named and skipped with a warning
UNDECODABLE_EXTENSIONS = (".m4a", ".aac", ".mp4", ".m4b", ".wma", ".amr", ".3gp", ".webm", ".mkv", ".mov", ".ac3")
CONVERT_HINT = "convert it first, e.g. ffmpeg -i IN.m4a -ac 1 -ar 16000 OUT.wav"
MIN_SAMPLES = FeatureEncoderConfig().receptive_field  # 400: every preset's CNN; shorter input yields no frame
MIN_SECONDS = MIN_SAMPLES / SAMPLE_RATE  # 25 ms: the shortest crop or window worth a config value


class AudioError(ValueError):
    """A file that cannot be used as audio; str() names the file and the problem. `nonfinite`: it
    decodes, but holds NaN/inf samples (load_audio(..., nonfinite="zero") would give it, zeroed)."""

    def __init__(self, path: str | Path, problem: str, nonfinite: bool = False) -> None:
        self.path = str(path)
        self.problem = problem
        self.nonfinite = nonfinite
        super().__init__(f"{path}: {problem}")


def convert_hint(path: str | Path) -> str:
    """What to do with a file in a format libsndfile cannot read ("" for any other file)."""
    suffix = Path(path).suffix.lower()
    return f"; {suffix} is not a format libsndfile reads: {CONVERT_HINT}" if suffix in UNDECODABLE_EXTENSIONS else ""


def find_audio(root: str | Path) -> list[Path]:
    """All audio files below `root` (recursive, sorted), by extension; macOS metadata ("._a.wav",
    __MACOSX/) left out.

    Symlinked folders are followed (a corpus assembled from links is common; Path.rglob skips them
    silently), each real folder once, so a link back up the tree is not a loop and a folder linked
    twice gives its files once. Broken links named like audio are skipped with a warning."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    found: list[Path] = []
    broken: list[Path] = []
    foreign: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.stat(folder)
        if (real.st_dev, real.st_ino) in seen:
            dirs.clear()  # visited under another name: neither its files nor its sub-folders again
            continue
        seen.add((real.st_dev, real.st_ino))
        dirs.sort()  # the first name a folder is reached by is the same on every run
        dirs[:] = [d for d in dirs if d != "__MACOSX"]  # a zip made on a Mac: its resource forks, not audio
        for name in files:
            if name.startswith("._"):  # macOS metadata beside a copied file ("._a.wav"), never audio
                continue
            path = Path(folder) / name
            if path.suffix.lower() in AUDIO_EXTENSIONS:
                (found if path.is_file() else broken).append(path)
            elif path.suffix.lower() in UNDECODABLE_EXTENSIONS:
                foreign.append(path)
    if broken:
        warnings.warn(f"{root}: skipped {len(broken)} broken link(s) named like audio: "
                      f"{', '.join(map(str, sorted(broken)[:5]))}{' ...' if len(broken) > 5 else ''}", stacklevel=2)
    if foreign:
        kinds = ", ".join(sorted({p.suffix.lower() for p in foreign}))
        warnings.warn(f"{root}: skipped {len(foreign)} file(s) in a format the decoder (libsndfile) cannot read "
                      f"({kinds}): {', '.join(map(str, sorted(foreign)[:5]))}{' ...' if len(foreign) > 5 else ''}; "
                      f"{CONVERT_HINT.replace('convert it', 'convert them')}", stacklevel=2)
    return sorted(found)


def resample(wave: torch.Tensor, orig_sr: int, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Resample the last axis from `orig_sr` to `sample_rate` (no-op when equal)."""
    if orig_sr == sample_rate:
        return wave
    return AF.resample(wave, orig_freq=int(orig_sr), new_freq=int(sample_rate))


def to_mono(data: np.ndarray) -> np.ndarray:
    """(frames,) of (frames, channels): the channels' mean, or the loudest channel where the mean cancels
    (a channel wired in opposite phase: its mean is silence, below a quarter of the loudest channel's RMS)."""
    if data.shape[1] == 1:
        return data[:, 0]
    mix = data.mean(axis=1)
    loudest = _cancelled(_sum_squares(mix[:, None])[0], _sum_squares(data))
    return mix if loudest is None else data[:, loudest]


def _sum_squares(data: np.ndarray, block: int = 1 << 18) -> np.ndarray:
    """(channels,) float64 sums of squares of (frames, channels), a block of frames at a time (no float64 copy of
    a long many-channel recording)."""
    return sum((np.square(data[i:i + block], dtype=np.float64).sum(0) for i in range(0, len(data), block)),
               np.zeros(data.shape[1]))


def _cancelled(mix_squares: float, channel_squares: np.ndarray) -> int | None:
    """The loudest channel where the channels' mean cancels (below a quarter of its RMS), else None."""
    if channel_squares.max() > 0 and math.sqrt(mix_squares) < 0.25 * math.sqrt(channel_squares.max()):
        return int(channel_squares.argmax())
    return None


def _decode(path: Path, nonfinite: str) -> tuple[np.ndarray, int]:
    """(mono float32 samples, sample rate) of a file, decoded a block at a time and mixed down as it goes: a
    long many-channel file (8 channels at 192 kHz) never sits in memory with all its channels (`to_mono`'s rule).
    Raises AudioError for NaN/inf samples unless nonfinite="zero"."""
    mixed: list[np.ndarray] = []
    with sf.SoundFile(str(path)) as f:
        sr, channels = f.samplerate, f.channels
        mix_sq, chan_sq = 0.0, np.zeros(channels)
        for block in f.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
            if not np.isfinite(block).all():
                if nonfinite != "zero":
                    raise AudioError(path, "audio contains NaN or infinite values", nonfinite=True)
                block = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
            mix = block.mean(axis=1) if channels > 1 else block[:, 0].copy()
            if channels > 1:
                mix_sq += float(_sum_squares(mix[:, None])[0])
                chan_sq += _sum_squares(block)
            mixed.append(mix)
        loudest = _cancelled(mix_sq, chan_sq) if channels > 1 else None
        if loudest is not None:  # a second pass for that channel alone
            f.seek(0)
            mixed = [np.nan_to_num(b[:, loudest], nan=0.0, posinf=0.0, neginf=0.0)
                     for b in f.blocks(blocksize=1 << 16, dtype="float32", always_2d=True)]
    return (np.concatenate(mixed) if mixed else np.zeros(0, np.float32)), sr


MIN_SAMPLE_RATE = 1000  # Hz: an array "at 44.1" (kHz for Hz) would be resampled to a 1,000-times-longer clip
# float samples are expected within [-1, 1]; far beyond it their squares overflow float32 (1e20 gave NaN
# probabilities under an emotion's name): such a clip is scaled down to a peak of 1
MAX_PEAK = 1e9


def tamed(wave: torch.Tensor, name: str | Path) -> torch.Tensor:
    """`wave`, scaled down to a peak of 1 where its samples pass MAX_PEAK (warned, naming `name`)."""
    peak = float(wave.abs().max()) if wave.numel() else 0.0
    if peak <= MAX_PEAK:
        return wave
    warnings.warn(f"{name}: samples up to {peak:.3g}, where audio lies within [-1, 1]: scaled down to a peak of 1",
                  stacklevel=3)
    return wave / peak


def not_a_file(path: Path) -> str | None:
    """Why `path` cannot be an audio file before it is opened (None: it may be one)."""
    if path.is_dir():
        return "a folder, not an audio file"
    if path.is_symlink() and not path.exists():
        return "a link to nothing (its target is missing, or the links loop)"
    if not path.is_file():
        return "file not found"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    return None


def wav_shortfall(path: Path) -> float | None:
    """The share of a WAV file's declared audio data that is missing from it (a copy cut short: libsndfile
    decodes what is there without a word), else None. Streaming writers' "length unknown" (0 or 0xFFFFFFFF)
    and files that are not RIFF/WAVE are not judged."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = os.fstat(f.fileno()).st_size
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                chunk = f.read(8)
                declared = int.from_bytes(chunk[4:8], "little")
                if chunk[:4] == b"data":
                    have = size - pos - 8
                    if declared in (0, 0xFFFFFFFF) or have >= declared:
                        return None
                    return (declared - have) / declared
                pos += 8 + declared + (declared & 1)
    except OSError:
        return None
    return None


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, nonfinite: str = "error") -> torch.Tensor:
    """Decode `path` to a mono float32 tensor of shape (s,) at `sample_rate`.

    Channels are averaged (`to_mono`). Raises AudioError for a missing, unreadable
    or empty file, and for audio holding NaN/inf values unless nonfinite="zero" (they become 0). Length
    is not checked here: see `MIN_SAMPLES`.
    """
    path = Path(path)
    if problem := not_a_file(path):
        raise AudioError(path, problem)
    try:
        data, sr = _decode(path, nonfinite)
    except AudioError:
        raise
    except Exception as e:  # libsndfile raises several types for corrupt/unsupported files
        raise AudioError(path, f"cannot decode audio ({type(e).__name__}: {e}){convert_hint(path)}") from None
    if data.size == 0:
        raise AudioError(path, "no audio samples (empty file)")
    if (missing := wav_shortfall(path)) is not None:
        warnings.warn(f"{path}: cut short: {missing:.0%} of the audio its header declares is missing from the file "
                      f"(an interrupted copy or download?); using the {len(data) / sr:.2f} s that are there",
                      stacklevel=2)
    wave = tamed(torch.from_numpy(data), path)
    return resample(wave, sr, sample_rate).contiguous()


def load_segment(path: str | Path, start_s: float, seconds: float, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """`seconds` of `path` from `start_s` as a mono float32 tensor (s,) at `sample_rate`, decoding only that
    stretch (a window of a two-hour recording without the rest in memory); NaN/inf samples become 0."""
    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            f.seek(min(int(round(start_s * sr)), max(f.frames - 1, 0)))
            data = f.read(int(round(seconds * sr)), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises several types for corrupt/unsupported files
        raise AudioError(path, f"cannot decode audio ({type(e).__name__}: {e}){convert_hint(path)}") from None
    data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    wave = tamed(torch.from_numpy(to_mono(data).copy()), path)
    return resample(wave, sr, sample_rate).contiguous()


def audio_info(path: str | Path) -> tuple[int, int]:
    """(num_frames, sample_rate) from the header alone; AudioError when unreadable."""
    try:
        info = sf.info(str(path))
    except Exception as e:
        raise AudioError(path, f"cannot read audio header ({type(e).__name__}: {e}){convert_hint(path)}") from None
    return int(info.frames), int(info.samplerate)


def num_samples_16k(path: str | Path) -> int:
    """Length in samples after resampling to 16 kHz, from the header alone."""
    frames, sr = audio_info(path)
    return int(round(frames * SAMPLE_RATE / sr))


def save_audio(path: str | Path, wave: torch.Tensor | np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write a mono or (s, channels) waveform as 16-bit PCM (format from the extension)."""
    data = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    subtype = "PCM_16" if Path(path).suffix.lower() in (".wav", ".flac") else None
    sf.write(str(path), np.clip(data, -1.0, 1.0), sample_rate, subtype=subtype)
