"""`python -m finetune predict`: emotion (or "no speech"), label and the six probabilities for each file;
with --timeline, each window's probabilities as a CSV and a PNG per file (an emotion timeline).

Prediction is `w2v2.emotion.recognizer.EmotionRecognizer`, the path the API and the web app take: a
file's probabilities are the mean of its windows', so the timeline and the file's label come from one
pass; with several --ckpt, each window's probabilities are the members' mean; the files of one call are
one recording set for the travelling model's standardisation (`--normalise clip`: each alone).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import pandas as pd
import torch

from finetune.outputs import check_not_input, check_output_file, file_row, write_csv
from finetune.plots import plot_timeline
from w2v2.checkpoint import atomic_write
from w2v2.data.audio import AudioError, find_audio
from w2v2.data.datasets import Item
from w2v2.emotion.recognizer import (
    STREAM_SECONDS,
    EmotionRecognizer,
    Normalise,
    Prediction,
    file_seconds,
    timeline_frame,
)
from w2v2.emotion.travel import GroupPlan
from w2v2.emotion.windows import AudioCache


def expand(inputs: list[Path]) -> list[Path]:
    """The audio files of `inputs` (files, folders); every path that does not exist is named in one error
    before any work starts."""
    files, missing = [], []
    for p in inputs:
        if p.is_dir():
            files += find_audio(p)
        elif not p.exists():
            missing.append(p)
        elif p.suffix.lower() in (".csv", ".tsv"):
            raise ValueError(f"{p}: a table, not audio: predict takes audio files and folders (`evaluate --data "
                             f"{p}` scores a labelled CSV's clips, `submit --data DIR` a competition folder)")
        else:
            files.append(p)
    if missing:
        raise FileNotFoundError(f"no such file or folder: {', '.join(map(str, missing[:10]))}"
                                + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))
    seen: dict[Path, Path] = {}
    for f in files:  # a file named twice (itself and in its folder) is one recording: once in the set, once out
        seen.setdefault(f.resolve(), f)
    if len(seen) < len(files):
        twice = len(files) - len(seen)
        warnings.warn(f"{twice} file(s) given more than once (e.g. a file and its folder): each predicted once",
                      stacklevel=2)
    return list(seen.values())


def predict_files(recognizer: EmotionRecognizer, files: list[Path], window_seconds: float = 8.0,
                  hop_seconds: float | None = None, tta: tuple[float, ...] = (), normalise: Normalise = "set"
                  ) -> tuple[pd.DataFrame, list[Prediction], list[torch.Tensor | pd.DataFrame], GroupPlan | None]:
    """(one row per decodable file: path, label, label_name, p_*, speech_s; each such file's Prediction; its
    decoded clip, or for a file longer than STREAM_SECONDS, streamed window by window, its timeline; how a
    travelling model took the files that fit in memory, which are one recording set unless
    normalise="clip")."""
    streamed = {i: recognizer.stream(f, window_seconds, hop_seconds, tta, progress=True)
                for i, f in enumerate(files) if long_file(f)}
    short = [i for i in range(len(files)) if i not in streamed]
    cache = AudioCache([Item(id=files[i].stem, path=files[i]) for i in short])
    ok = [i for k, i in enumerate(short) if cache[k] is not None]
    waves = [w for k in range(len(short)) if (w := cache[k]) is not None]
    answers, plan = recognizer.predict_set(waves, normalise, None, window_seconds, hop_seconds, tta, progress=True)
    preds = dict(zip(ok, answers, strict=True))
    sources: dict[int, torch.Tensor | pd.DataFrame] = dict(zip(ok, waves, strict=True))
    for i, (pred, timeline) in streamed.items():
        preds[i], sources[i] = pred, timeline
    order = sorted(preds)
    return (pd.DataFrame([file_row(files[i], preds[i]) for i in order]), [preds[i] for i in order],
            [sources[i] for i in order], plan)


def long_file(path: Path) -> bool:
    """Whether a file is longer than STREAM_SECONDS by its header (an unreadable one is left to the decoder)."""
    try:
        return file_seconds(path) > STREAM_SECONDS
    except AudioError:
        return False


def unique_names(paths: list[Path]) -> list[str]:
    """File stems, numbered where two inputs share one (a/x.wav, b/x.wav -> x, x-2)."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        seen[p.stem] = seen.get(p.stem, 0) + 1
        names.append(p.stem if seen[p.stem] == 1 else f"{p.stem}-{seen[p.stem]}")
    return names


def write_timelines(folder: Path, paths: list[Path], preds: list[Prediction],
                    sources: list[torch.Tensor | pd.DataFrame], window_seconds: float, hop_seconds: float | None
                    ) -> None:
    """DIR/NAME.csv and .png per file, from its decoded clip or its streamed timeline (`predict_files`)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path, name, pred, source in zip(paths, unique_names(paths), preds, sources, strict=True):
        df = source if isinstance(source, pd.DataFrame) else timeline_frame(pred, source.numel(), window_seconds,
                                                                            hop_seconds)
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


SHOWN = 20  # rows printed; more files go to a CSV (--out, or predictions.csv here) so that none is lost


def free_name(path: Path) -> Path:
    """path, or the first of path-2, path-3, ... (before the suffix) that does not exist: a default output
    never replaces a file."""
    candidate, k = path, 2
    while candidate.exists():
        candidate, k = path.with_name(f"{path.stem}-{k}{path.suffix}"), k + 1
    return candidate


def cmd_predict(args: argparse.Namespace) -> pd.DataFrame:
    files = expand(args.inputs)
    if not args.out and len(files) > SHOWN:
        args.out = free_name(Path("predictions.csv"))
    check_outputs(args, files)
    if not files:
        raise FileNotFoundError(f"no audio files in {[str(p) for p in args.inputs]}")
    recognizer = EmotionRecognizer.from_pretrained(args.ckpt, args.device, args.precision, keep_loaded=False)
    window = args.window_seconds or recognizer.window_seconds  # as `evaluate` scores the model: its own window
    if args.hop_seconds and args.hop_seconds > window:
        raise ValueError(f"--hop-seconds {args.hop_seconds} is longer than the {window:g} s windows: the windows "
                         "would leave gaps")
    df, preds, sources, plan = predict_files(recognizer, files, window, args.hop_seconds, args.tta,
                                             args.normalise)
    skipped = len(files) - len(df)
    if df.empty:
        raise ValueError(f"none of the {len(files)} file(s) could be decoded (see above): nothing predicted")
    with pd.option_context("display.max_columns", 20, "display.width", 160):
        print(df.head(SHOWN).to_string(index=False))
    if skipped:
        print(f"{skipped} file(s) could not be decoded and were skipped (see above)")
    streamed = sum(isinstance(s, pd.DataFrame) for s in sources)
    if plan is not None and len(preds) > 1:  # one file is plainly alone
        minutes = f"{STREAM_SECONDS / 60:g} min"
        long = f"; {streamed} file(s) over {minutes}, each taken alone window by window" if streamed else ""
        print(normalisation_line(plan, args.normalise, f"files under {minutes}" if streamed else "files", long))
    if args.out:  # through a temporary file: a kill or a full disk never leaves half a CSV under the name
        atomic_write(args.out, lambda tmp: df.to_csv(tmp, index=False))
        more = f" ({len(df) - SHOWN} more rows than shown above)" if len(df) > SHOWN else ""
        print(f"predictions: {args.out}{more}")
    if args.timeline:
        write_timelines(args.timeline, [Path(p) for p in df.path], preds, sources,
                        window, args.hop_seconds)
    return df


def normalisation_line(plan: GroupPlan, normalise: Normalise, what: str = "clips", more: str = "") -> str:
    """What `predict`, `evaluate` and `submit` print of how a travelling model took their recordings: its plan
    in words (`GroupPlan.words`), and the flag that changes it."""
    if normalise == "clip":
        return f"normalisation: each of the {what} alone (--normalise clip){more}"
    hint = ("; --normalise clip takes each alone: a set should mix emotions" if plan.kept and plan.groups == 1
            else "; --normalise set or clip to change" if plan.kept else "")
    return f"normalisation: {plan.words(what)}{hint}{more}"
