"""The run folder and the files the commands write: what is written (config.yaml, metrics.json,
val_probs.csv, test_probs.csv, submission.csv, confusion matrices: `start_run`, `finish`,
`write_test_outputs`) and the checks before any work starts (`prepare_run`, `check_output_file`): a long
run must never end unable to write its result, a re-run must never mix with, or silently replace, an
earlier run's files, and every file is written whole (through a temporary file) or not at all."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from finetune.config import FinetuneConfig
from finetune.metrics import classification_metrics
from finetune.plots import plot_confusion
from w2v2.checkpoint import atomic_write, load_model
from w2v2.config import to_dict
from w2v2.data.datasets import Dataset, Item, item_labels, labelled_test
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.members import MEMBER_NAME
from w2v2.emotion.recognizer import Prediction, has_signal
from w2v2.emotion.windows import AudioCache, cached_waves, predict_probs
from w2v2.model import Wav2Vec2ForClassification
from w2v2.training import resolve_device

# everything `python -m finetune train` writes into a run folder (save_model's temporaries start ".best."),
# an ensemble's parent folder included (and its member folders, MEMBER_NAME: see `previous_outputs`)
RUN_OUTPUTS = ("config.yaml", "history.jsonl", "metrics.json", "submission.csv", "submission.tmp", "curves.png",
               "confusion_matrix.png", "confusion_matrix_test.png", "confusion_matrix_oof.png", "best", "best.old",
               "test_probs.csv", "test_probs.tmp", "val_probs.csv", "val_probs.tmp", "oof_probs.csv", "oof_probs.tmp",
               "recipe.json", "resume", "resume.old", ".resume.tmp", "ensemble.json", "ensemble.tmp")


PROB_COLUMNS = [f"p_{name}" for name in EMOTIONS]  # in every probability file we write


def file_row(path: Path, pred: Prediction) -> dict:
    """path, label (-1: no speech), label_name, the six probabilities (4 decimals) and speech_s of a file."""
    label = EMOTIONS.index(pred.label) if pred.label in EMOTIONS else -1
    return {"path": str(path), "label": label, "label_name": pred.label,
            **{col: round(pred.probs[e], 4) for col, e in zip(PROB_COLUMNS, EMOTIONS, strict=True)},
            "speech_s": round(pred.speech_seconds, 2)}


class OutputError(ValueError):
    """An output path that cannot be written; the message names it."""


def refuse_under_a_file(folder: Path, what: str) -> None:
    """OutputError where `folder` or a folder above it is a file (no folder can be made there); touches nothing."""
    if blocker := next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None):
        raise OutputError(f"{what}: {blocker} is a file, so no folder can be made there: choose another path")


def _probe(folder: Path, what: str) -> None:
    """Create `folder` if needed and prove a file can be written in it."""
    refuse_under_a_file(folder, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise OutputError(f"{what}: cannot write into {folder} ({e.strerror or e})") from None


def check_output_file(path: Path, what: str, inputs: Sequence[Path] = (), models: Sequence[Path] = ()) -> None:
    """A file we will write at the end: not a folder, in a folder that exists (created) and is writable,
    and none of the command's `inputs` nor inside one of its `models` folders (writing there would
    destroy what the command reads, or a model's run)."""
    if path.is_dir():
        raise OutputError(f"{what} {path}: is a folder; give a file name, e.g. {path / 'predictions.csv'}")
    check_not_input(path, what, inputs, models)
    _probe(path.parent, f"{what} {path}")


def check_not_input(path: Path, what: str, inputs: Sequence[Path] = (), models: Sequence[Path] = ()) -> None:
    """OutputError naming both when `path` is one of `inputs` (symlinks and hard links too) or lies
    inside one of the `models` folders."""
    target = path.resolve()
    for source in inputs:
        if target == source.resolve() or (path.exists() and source.exists() and os.path.samefile(path, source)):
            raise OutputError(f"{what} {path}: is the input file {source}; writing it would destroy that input: "
                              "choose another path")
    for model in models:
        folder = model.resolve()
        if target == folder or folder in target.parents:
            raise OutputError(f"{what} {path}: lies inside the model folder {model} (--ckpt); writing there could "
                              "replace that model's files: choose a path outside it")


def previous_outputs(run: Path) -> list[Path]:
    return sorted(p for p in run.iterdir() if p.name in RUN_OUTPUTS or p.name.startswith(".best.")
                  or (p.is_dir() and MEMBER_NAME.fullmatch(p.name)))


def check_run_folder(run: Path) -> None:
    """OutputError for a --run that is a file, or whose folder would sit under one; touches nothing."""
    if run.exists() and not run.is_dir():
        raise OutputError(f"--run {run}: is a file, not a folder")
    refuse_under_a_file(run.parent, f"--run {run}")


def remove_outputs(run: Path, old: list[Path]) -> None:
    """Remove an earlier run's outputs `old` from `run` (--overwrite), saying so; other files stay."""
    for p in old:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    if old:
        print(f"--overwrite: removed the earlier run's {', '.join(p.name for p in old)} from {run}; starting afresh")


def check_run(run: Path, overwrite: bool) -> list[Path]:
    """What `prepare_run` refuses, without touching anything (`--dry-run`): a file, or an earlier run's
    outputs without `overwrite`. Returns those outputs (what --overwrite would remove)."""
    check_run_folder(run)
    old = previous_outputs(run) if run.is_dir() else []
    if old and not overwrite:
        state = "a finished run" if (run / "metrics.json").is_file() else "an unfinished run (no metrics.json)"
        resume = "" if (run / "metrics.json").is_file() else " pass --resume to continue it after its last epoch,"
        raise OutputError(f"--run {run}: already holds {state} ({', '.join(p.name for p in old)});{resume} pass "
                          "--overwrite to replace it with a new run from epoch 1, or choose another --run")
    return old


def prepare_run(run: Path, overwrite: bool) -> None:
    """A writable run folder holding no earlier run's outputs. An earlier run (finished, or killed:
    no metrics.json) is refused, or with `overwrite` its outputs are removed first; other files stay."""
    remove_outputs(run, check_run(run, overwrite))
    _probe(run, f"--run {run}")


def start_run(run: Path, cfg: FinetuneConfig) -> None:
    """The run folder, with the config it trains with (config.yaml)."""
    run.mkdir(parents=True, exist_ok=True)
    atomic_write(run / "config.yaml", lambda tmp: tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False)))


def write_json(path: Path, content: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(content, indent=2)))


def probs_frame(items: list[Item], probs: torch.Tensor, labelled: bool = False) -> pd.DataFrame:
    """`id` (+ `path`, `label` for labelled items) and the six probability columns, one row per item."""
    df = pd.DataFrame({"id": [it.id for it in items]})
    if labelled:
        df["path"] = [str(it.path) for it in items]
        df["label"] = [it.label for it in items]
    return pd.concat([df, pd.DataFrame(probs.double().numpy(), columns=PROB_COLUMNS)], axis=1)


def seed_validation(run: Path, members: list[dict]) -> pd.DataFrame | None:
    """The ensemble's own validation estimate, one seed at a time: the members of a seed (its fine-tune, probe,
    tiny model and descriptors head) validate on the same clips, so their val_probs.csv are averaged row by
    row into that seed's ensemble, weighted as `finetune.weights` fitted the kinds on the other seeds'
    clips; the rows of every seed follow one another, with a `seed` column (a clip may be in several
    seeds' validation). None where the members of a seed validate on different clips (k-fold
    members: their estimate is out-of-fold) or a member's file is missing."""
    from finetune.weights import unit_weights  # it writes through this module

    frames = []
    for seed in dict.fromkeys(m["seed"] for m in members):
        names = [m["name"] for m in members if m["seed"] == seed]
        paths = [run / name / "val_probs.csv" for name in names]
        if not all(p.is_file() for p in paths):
            return None
        each = [pd.read_csv(p) for p in paths]
        if any(df["id"].tolist() != each[0]["id"].tolist() for df in each):
            return None
        weights = unit_weights(run, names)  # the kinds' weights fitted without this seed's clips, if any
        mean = sum(w * df[PROB_COLUMNS].to_numpy() for w, df in zip(weights, each, strict=True)) / sum(weights)
        frame = each[0].assign(**dict(zip(PROB_COLUMNS, mean.T, strict=True)))
        frame.insert(3, "seed", seed)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else None


def frame_metrics(df: pd.DataFrame) -> dict:
    """classification_metrics of a labelled probability frame (its argmax against `label`)."""
    return classification_metrics(df["label"].tolist(), df[PROB_COLUMNS].to_numpy().argmax(1).tolist())


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write through a temporary file: a killed run never leaves half a CSV under the final name."""
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, float_format="%.6f"))


def evaluate_items(model: Wav2Vec2ForClassification, items: list[Item], cache: AudioCache, window_seconds: float,
                   progress: bool = False, tta: tuple[float, ...] = ()) -> tuple[dict, torch.Tensor]:
    """Metrics and probabilities (n, 6) over labelled items (`network_probs`: an undecodable clip 1/6 each)."""
    probs = network_probs(model, cached_waves(cache, len(items)), window_seconds, progress, tta)
    return classification_metrics(item_labels(items), probs.argmax(-1).tolist()), probs


def network_probs(model: Wav2Vec2ForClassification, waves: list[torch.Tensor], window_seconds: float,
                  progress: bool = False, tta: tuple[float, ...] = ()) -> torch.Tensor:
    """(n, 6) probabilities of whole clips, as `predict` answers them: a clip with no signal (an undecodable
    one, read as silence) holds no evidence, 1/6 each, not the network's answer to silence."""
    probs = predict_probs(model, waves, window_seconds, progress=progress, tta=tta)
    empty = [i for i, w in enumerate(waves) if not has_signal(w)]
    probs[empty] = 1 / len(EMOTIONS)
    return probs


def finish(run: Path, data: Dataset, val_items: list[Item], val_cache: AudioCache, cfg: FinetuneConfig,
           best_epoch: int, seconds: float) -> dict:
    """Reload the best checkpoint; metrics.json, confusion matrices, val_probs.csv and, for competitions,
    submission.csv and test_probs.csv (validation and test predicted with `cfg.tta`, on `cfg.device`)."""
    model = load_model(run / "best").to(resolve_device(cfg.device)).eval()
    assert isinstance(model, Wav2Vec2ForClassification)  # what train() and train_probe() save
    val_metrics, val_probs = evaluate_items(model, val_items, val_cache, cfg.window_seconds, progress=True,
                                            tta=cfg.tta)
    write_csv(probs_frame(val_items, val_probs, labelled=True), run / "val_probs.csv")
    result = {"validation": val_metrics, "best_epoch": best_epoch, "train_seconds": seconds,
              "layout": data.layout, "data": str(data.root)}
    plot_confusion(val_metrics["confusion_matrix"], list(EMOTIONS), run / "confusion_matrix.png",
                   f"validation (UAR {val_metrics['uar']:.3f})")
    if data.test:
        waves = cached_waves(AudioCache(data.test), len(data.test))
        result |= write_test_outputs(run, data, network_probs(model, waves, cfg.window_seconds, True, cfg.tta))
    write_json(run / "metrics.json", result)
    return result


def write_test_outputs(folder: Path, data: Dataset, probs: torch.Tensor) -> dict:
    """submission.csv (the most probable class) and test_probs.csv of `data.test`'s probabilities (n, 6);
    returns {"submission": path} and, where test_labels.csv labels clips, {"test": their metrics}."""
    preds = probs.argmax(-1).tolist()
    write_submission(folder / "submission.csv", data, preds)
    write_csv(probs_frame(data.test, probs), folder / "test_probs.csv")
    result: dict = {"submission": str(folder / "submission.csv")}
    if labelled := labelled_test(data):
        pred_of = dict(zip((it.id for it in data.test), preds, strict=True))  # ids are unique (datasets.py)
        result["test"] = classification_metrics(item_labels(labelled), [pred_of[it.id] for it in labelled])
        plot_confusion(result["test"]["confusion_matrix"], list(EMOTIONS), folder / "confusion_matrix_test.png",
                       f"test (UAR {result['test']['uar']:.3f})")
    return result


def write_submission(path: Path, data: Dataset, preds: list[int]) -> None:
    """sample_submission's ids, order and columns, with our labels."""
    sub = data.submission.copy() if data.submission is not None else pd.DataFrame({"id": [t.id for t in data.test]})
    label_col = next((c for c in sub.columns if c.strip().lower() == "label"), None)
    sub[label_col or (sub.columns[-1] if len(sub.columns) > 1 else "label")] = preds
    write_csv(sub, path)
