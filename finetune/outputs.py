"""Output paths, checked before any work starts: a long run must never end unable to write its result,
and a re-run must never mix with, or silently replace, an earlier run's files."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

# everything `python -m finetune train` writes into a run folder (save_model's temporaries start ".best."),
# an ensemble's parent folder included (and its member folders, MEMBER_NAME: see `previous_outputs`)
RUN_OUTPUTS = ("config.yaml", "history.jsonl", "metrics.json", "submission.csv", "submission.tmp", "curves.png",
               "confusion_matrix.png", "confusion_matrix_test.png", "confusion_matrix_oof.png", "best", "best.old",
               "test_probs.csv", "test_probs.tmp", "val_probs.csv", "val_probs.tmp", "oof_probs.csv", "oof_probs.tmp",
               "recipe.json", "resume", "resume.old", ".resume.tmp")


MEMBER_NAME = re.compile(r"(fold|member)_(\d+)(_probe|_scratch)?")  # an ensemble's members (finetune.recipe)


class OutputError(ValueError):
    """An output path that cannot be written; the message names it."""


def _probe(folder: Path, what: str) -> None:
    """Create `folder` if needed and prove a file can be written in it."""
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


def prepare_run(run: Path, overwrite: bool) -> None:
    """A writable run folder holding no earlier run's outputs. An earlier run (finished, or killed:
    no metrics.json) is refused, or with `overwrite` its outputs are removed first; other files stay."""
    if run.exists() and not run.is_dir():
        raise OutputError(f"--run {run}: is a file, not a folder")
    old = previous_outputs(run) if run.is_dir() else []
    if old and not overwrite:
        state = "a finished run" if (run / "metrics.json").is_file() else "an unfinished run (no metrics.json)"
        resume = "" if (run / "metrics.json").is_file() else " pass --resume to continue it after its last epoch,"
        raise OutputError(f"--run {run}: already holds {state} ({', '.join(p.name for p in old)});{resume} pass "
                          "--overwrite to replace it with a new run from epoch 1, or choose another --run")
    for p in old:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    if old:
        print(f"--overwrite: removed the earlier run's {', '.join(p.name for p in old)} from {run}; starting afresh")
    _probe(run, f"--run {run}")
