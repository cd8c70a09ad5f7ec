"""`python -m finetune predict`: emotion, label name and the six probabilities for each file; with
--timeline, each window's probabilities as a CSV and a PNG per file (an emotion timeline).

A file's probabilities are the mean of its windows' (see `finetune.data.window_probs`), so the
timeline and the file's label come from one pass; with several --ckpt, each window's probabilities
are the members' mean. Decoded audio stays in memory (a 10-minute file is 38 MB at 16 kHz), windows
are views of it, and the model sees 8 windows at a time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from finetune.data import AudioCache, window_starts
from finetune.ensemble import ensemble_window_probs, members
from finetune.outputs import PROB_COLUMNS, check_not_input, check_output_file, write_csv
from finetune.plots import plot_timeline
from w2v2.checkpoint import atomic_write
from w2v2.data.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, find_audio
from w2v2.data.datasets import Item
from w2v2.data.labels import EMOTIONS
from w2v2.training import inference_precision, resolve_device


def expand(inputs: list[Path]) -> list[Path]:
    files = []
    for p in inputs:
        if p.is_dir():
            files += find_audio(p)
        elif p.suffix.lower() in AUDIO_EXTENSIONS or p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return files


def predict_files(ckpts: list[Path], files: list[Path], window_seconds: float = 8.0,
                  hop_seconds: float | None = None, tta: tuple[float, ...] = (), device: torch.device | None = None
                  ) -> tuple[pd.DataFrame, list[torch.Tensor], list[int]]:
    """(one row per decodable file: path, label, label_name, p_*; each such file's (windows, 6)
    probabilities; each such file's length in samples)."""
    cache = AudioCache([Item(id=f.stem, path=f) for f in files])
    ok = [i for i in range(len(files)) if cache[i] is not None]
    waves = [w for i in ok if (w := cache[i]) is not None]  # all of them
    per_window = ensemble_window_probs(members(ckpts), waves, window_seconds, hop_seconds, tta, progress=True,
                                       device=device)
    rows = [file_row(files[i], windows) for i, windows in zip(ok, per_window, strict=True)]
    return pd.DataFrame(rows), per_window, [w.numel() for w in waves]


def file_row(path: Path, windows: torch.Tensor) -> dict:
    """path, label, label_name and the six probabilities (4 decimals) of a file from its windows' (w, 6)."""
    p = windows.mean(0)
    label = int(p.argmax())
    return {"path": str(path), "label": label, "label_name": EMOTIONS[label],
            **{col: round(float(v), 4) for col, v in zip(PROB_COLUMNS, p, strict=True)}}


def timeline_frame(probs: torch.Tensor, num_samples: int, window_seconds: float,
                   hop_seconds: float | None) -> pd.DataFrame:
    """start_s, end_s, the six probabilities and the label name of each window (probs (windows, 6))."""
    window = int(window_seconds * SAMPLE_RATE)
    starts = window_starts(num_samples, window, int(hop_seconds * SAMPLE_RATE) if hop_seconds else None)
    df = pd.DataFrame({"start_s": [s / SAMPLE_RATE for s in starts],
                       "end_s": [min(s + window, num_samples) / SAMPLE_RATE for s in starts]})
    df = pd.concat([df, pd.DataFrame(probs.double().numpy(), columns=PROB_COLUMNS)], axis=1)
    df["label_name"] = [EMOTIONS[i] for i in probs.argmax(-1).tolist()]
    return df


def unique_names(paths: list[Path]) -> list[str]:
    """File stems, numbered where two inputs share one (a/x.wav, b/x.wav -> x, x-2)."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        seen[p.stem] = seen.get(p.stem, 0) + 1
        names.append(p.stem if seen[p.stem] == 1 else f"{p.stem}-{seen[p.stem]}")
    return names


def write_timelines(folder: Path, paths: list[Path], per_window: list[torch.Tensor], lengths: list[int],
                    window_seconds: float, hop_seconds: float | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path, name, probs, n in zip(paths, unique_names(paths), per_window, lengths, strict=True):
        df = timeline_frame(probs, n, window_seconds, hop_seconds)
        write_csv(df, folder / f"{name}.csv")
        plot_timeline(df, folder / f"{name}.png", path.name)
    print(f"timelines: {folder}/NAME.csv and NAME.png for {len(paths)} file(s)")


def check_outputs(args: argparse.Namespace, files: list[Path]) -> None:
    """--out and every --timeline file writable, and none of them an input file or inside a --ckpt folder
    (`predict --ckpt RUN rec.wav --out rec.wav` would replace the recording with the CSV)."""
    if args.out:
        check_output_file(args.out, "--out", files, args.ckpt)
    if args.timeline:
        check_output_file(args.timeline / "timeline.csv", "--timeline", files, args.ckpt)
        for name in unique_names(files):
            for suffix in (".csv", ".png"):
                check_not_input(args.timeline / f"{name}{suffix}", "--timeline", files, args.ckpt)


def cmd_predict(args: argparse.Namespace) -> pd.DataFrame:
    files = expand(args.inputs)
    check_outputs(args, files)
    if not files:
        raise FileNotFoundError(f"no audio files in {[str(p) for p in args.inputs]}")
    device = resolve_device(args.device)
    with inference_precision(args.precision, device):
        df, per_window, lengths = predict_files(args.ckpt, files, args.window_seconds, args.hop_seconds, args.tta,
                                                device)
    skipped = len(files) - len(df)
    if df.empty:
        raise ValueError(f"none of the {len(files)} file(s) could be decoded (see warnings above): nothing predicted")
    with pd.option_context("display.max_columns", 20, "display.width", 160):
        print(df.head(10).to_string(index=False))
    if len(df) > 10:
        print(f"... {len(df) - 10} more")
    if skipped:
        print(f"{skipped} file(s) could not be decoded and were skipped (see warnings above)")
    if args.out:  # through a temporary file: a kill or a full disk never leaves half a CSV under the name
        atomic_write(args.out, lambda tmp: df.to_csv(tmp, index=False))
        print(f"predictions: {args.out}")
    if args.timeline:
        write_timelines(args.timeline, [Path(p) for p in df.path], per_window, lengths, args.window_seconds,
                        args.hop_seconds)
    return df
