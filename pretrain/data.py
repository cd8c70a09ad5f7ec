"""Unlabelled audio for pretraining: folders, audio files, manifests or competition folders, scanned once,
cropped at random.

Unusable files (unreadable, empty, too short) are skipped with one summary line naming them, or
stop the run with `data.strict=true`. A file that fails to decode later (e.g. NaN samples) is
dropped from its batch and reported; it ends a run only when no clip decodes at all (pretrain.train).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from w2v2.data.audio import AUDIO_EXTENSIONS, AudioError, find_audio, load_audio, num_samples_16k
from w2v2.data.batching import fit_length
from w2v2.data.datasets import competition_audio
from w2v2.training.progress import progress_bar


@dataclass(frozen=True)
class Clip:
    path: Path
    num_samples: int  # at 16 kHz


def read_manifest(path: Path) -> list[tuple[Path, int | None]]:
    """CSV/TSV with a path column (or path as first column) and an optional length column; a bad row is a
    ValueError naming the file and row (row 1 is the first line)."""
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        with open(path, newline="") as f:
            rows = [(n, r) for n, r in enumerate(csv.reader(f, delimiter=delimiter), start=1) if r]
    except (UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path}: neither audio ({', '.join(AUDIO_EXTENSIONS)}) nor a CSV/TSV manifest "
                         f"({e})") from None
    if not rows:
        raise ValueError(f"{path}: empty manifest")
    header = [c.strip().lower() for c in rows[0][1]]
    has_header = "path" in header
    col = header.index("path") if has_header else 0
    length_col = next((header.index(c) for c in ("num_samples", "length", "frames") if c in header), None)
    if not has_header and len(rows[0][1]) > 1 and rows[0][1][1].strip().isdigit():
        length_col = 1
    out = []
    for n, row in rows[1:] if has_header else rows:
        if col >= len(row) or not row[col].strip():
            raise ValueError(f"{path}, row {n}: no path")
        rel = Path(row[col].strip())
        cell = row[length_col].strip() if length_col is not None and length_col < len(row) else ""
        length = manifest_length(cell, path, n) if cell else None
        out.append((rel if rel.is_absolute() else path.parent / rel, length))
    return out


def manifest_length(text: str, path: Path, row: int) -> int:
    """A manifest's num_samples cell as a whole number of samples at 16 kHz."""
    try:
        length = int(text.strip())
    except ValueError:
        length = -1
    if length < 0:
        raise ValueError(f"{path}, row {row}: num_samples {text!r} is not a whole number of samples (at 16 kHz); "
                         "fix the row, or drop the column to read lengths from the audio headers")
    return length


def source_entries(source: Path) -> list[tuple[Path, int | None]]:
    """(path, length or None) of every clip in one source: a competition folder (train and test audio
    from its CSVs, labels ignored), any other folder (scanned recursively), an audio file or a manifest."""
    if source.is_dir():
        if (source / "train.csv").is_file() and (source / "test.csv").is_file():
            return [(p, None) for p in competition_audio(source)]
        return [(p, None) for p in find_audio(source)]
    if source.is_file():  # one audio file (data.path=one.wav), or a manifest
        return [(source, None)] if source.suffix.lower() in AUDIO_EXTENSIONS else read_manifest(source)
    raise FileNotFoundError(f"{source}: no such folder or manifest")


def scan(sources: Path | list[Path], min_samples: int,
         strict: bool = False) -> tuple[list[Clip], list[tuple[Path, str]]]:
    """(usable clips, [(path, problem)]) from one or several sources; lengths from headers."""
    sources = [sources] if isinstance(sources, Path) else sources
    entries = [e for source in sources for e in source_entries(source)]
    clips, bad = [], []
    for path, length in progress_bar(entries, desc="scanning audio", unit="file", disable=None, leave=False):
        try:
            if length is None:
                length = num_samples_16k(path)
            problem = None if length >= min_samples else f"too short ({length} samples at 16 kHz)"
        except AudioError as e:
            problem = e.problem
        if problem:
            if strict:
                raise ValueError(f"{path}: {problem} (data.strict=true)")
            bad.append((path, problem))
        else:
            clips.append(Clip(path, length))
    if not clips:
        raise ValueError(f"{', '.join(map(str, sources))}: no usable audio files ({len(bad)} unusable)")
    return clips, bad


def summarize_bad(bad: list[tuple[Path, str]], limit: int = 5, verb: str = "skipped") -> str:
    shown = "; ".join(f"{p.name}: {why}" for p, why in bad[:limit])
    more = f"; and {len(bad) - limit} more" if len(bad) > limit else ""
    return f"{verb} {len(bad)} unusable file(s): {shown}{more}"


def load_batch(clips: list[Clip], indices: list[int], max_samples: int, generator: torch.Generator,
               failed: dict[str, str]) -> list[torch.Tensor]:
    """Decode and randomly crop the clips of one batch; undecodable ones are recorded in `failed`."""
    waves = []
    for i in indices:
        clip = clips[i]
        if str(clip.path) in failed:
            continue
        try:
            wave = load_audio(clip.path)
        except AudioError as e:
            failed[str(clip.path)] = e.problem
            continue
        waves.append(fit_length(wave, max_samples, generator))
    return waves
