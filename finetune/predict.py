"""`python -m finetune predict`: emotion, label name and the six probabilities for each file."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from finetune.data import AudioCache, predict_probs
from finetune.model import load_classifier
from finetune.outputs import check_output_file
from w2v2.audio import AUDIO_EXTENSIONS, find_audio
from w2v2.checkpoint import CheckpointError
from w2v2.datasets import Item
from w2v2.labels import EMOTIONS


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


def predict_files(ckpt: Path, files: list[Path], window_seconds: float = 8.0) -> pd.DataFrame:
    model, ckpt = load_classifier(ckpt)
    cache = AudioCache([Item(id=f.stem, path=f) for f in files])
    ok = [i for i in range(len(files)) if cache[i] is not None]
    try:
        probs = predict_probs(model, [cache[i] for i in ok], window_seconds, progress=True)
    except ValueError as e:
        raise CheckpointError(f"{ckpt}: {e}") from None
    rows = []
    for i, p in zip(ok, probs, strict=True):
        label = int(p.argmax())
        rows.append({"path": str(files[i]), "label": label, "label_name": EMOTIONS[label],
                     **{f"p_{name}": round(float(v), 4) for name, v in zip(EMOTIONS, p, strict=True)}})
    return pd.DataFrame(rows)


def cmd_predict(args: argparse.Namespace) -> pd.DataFrame:
    if args.out:
        check_output_file(args.out, "--out")
    files = expand(args.inputs)
    if not files:
        raise FileNotFoundError(f"no audio files in {[str(p) for p in args.inputs]}")
    df = predict_files(args.ckpt, files, args.window_seconds)
    skipped = len(files) - len(df)
    if df.empty:
        raise ValueError(f"none of the {len(files)} file(s) could be decoded (see warnings above): nothing predicted")
    with pd.option_context("display.max_columns", 20, "display.width", 160):
        print(df.head(10).to_string(index=False))
    if len(df) > 10:
        print(f"... {len(df) - 10} more")
    if skipped:
        print(f"{skipped} file(s) could not be decoded and were skipped (see warnings above)")
    if args.out:
        df.to_csv(args.out, index=False)
        print(f"predictions: {args.out}")
    return df
