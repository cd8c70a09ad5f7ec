"""Ensembles and probability files: several fine-tuned models' class probabilities, averaged.

Design choices:
- soft voting: members' probabilities are averaged (not their labels), so a confident member counts
  more than a hesitant one, and the average is itself a probability table for stacking/blending;
- members may differ in architecture, init and window length: each predicts on its own, so nothing
  but the six emotions must match;
- members are loaded one at a time: an ensemble needs one model's memory, not k models';
- a k-fold parent folder (fold_1/, fold_2/, ...) stands for its folds, a run folder for its best/.
Probability columns are `p_<emotion>` in every file we write (predict --out, test_probs.csv,
val_probs.csv, oof_probs.csv, timelines), so they can be joined and blended without renaming.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch
from einops import reduce

from finetune.data import predict_probs, window_probs
from finetune.model import classifier_checkpoint, load_classifier
from w2v2.checkpoint import CheckpointError, atomic_write, read_meta
from w2v2.data.datasets import Item
from w2v2.data.labels import EMOTIONS

PROB_COLUMNS = [f"p_{name}" for name in EMOTIONS]
FOLD_NAME = re.compile(r"fold_(\d+)")


def fold_folders(path: Path) -> list[Path]:
    """fold_1/, fold_2/, ... of a k-fold parent folder, in fold order ([] for any other path)."""
    if not path.is_dir():
        return []
    folds = [d for d in path.iterdir() if d.is_dir() and FOLD_NAME.fullmatch(d.name)]
    return sorted(folds, key=lambda d: int(FOLD_NAME.fullmatch(d.name).group(1)))


def members(paths: list[Path]) -> list[Path]:
    """The checkpoint directories of --ckpt arguments (k-fold parents expanded to their folds), each
    checked to be a classifier before any model is loaded; a member given twice counts twice."""
    return [classifier_checkpoint(p) for path in paths for p in (fold_folders(path) or [path])]


def trained_window(ckpt: Path) -> float:
    """The evaluation window (seconds) a member was trained with (8 s for checkpoints without one)."""
    return read_meta(ckpt).get("finetune", {}).get("window_seconds", 8.0)


@contextmanager
def blamed(ckpt: Path) -> Iterator[None]:
    """A model that outputs NaN/inf (ValueError) becomes a CheckpointError naming the member."""
    try:
        yield
    except CheckpointError:
        raise
    except ValueError as e:
        raise CheckpointError(f"{ckpt}: {e}") from None


def ensemble_probs(ckpts: list[Path], waves: list[torch.Tensor], window_seconds: float | None = None,
                   tta: tuple[float, ...] = (), progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean probabilities (n, 6), each member's (m, n, 6)) of clips (s,). window_seconds None: each
    member uses the window it was trained with."""
    each = []
    for ckpt in ckpts:
        model, _ = load_classifier(ckpt)
        with blamed(ckpt):
            each.append(predict_probs(model, waves, window_seconds or trained_window(ckpt), progress=progress,
                                      tta=tta))
    stacked = torch.stack(each)
    return reduce(stacked, "m n l -> n l", "mean"), stacked


def ensemble_window_probs(ckpts: list[Path], waves: list[torch.Tensor], window_seconds: float,
                          hop_seconds: float | None = None, tta: tuple[float, ...] = (),
                          progress: bool = False) -> list[torch.Tensor]:
    """Per clip, (windows, 6): each window's probabilities averaged over the members (same windows for all)."""
    total: list[torch.Tensor] | None = None
    for ckpt in ckpts:
        model, _ = load_classifier(ckpt)
        with blamed(ckpt):
            probs = window_probs(model, waves, window_seconds, hop_seconds, tta, progress=progress)
        total = probs if total is None else [t + p for t, p in zip(total, probs, strict=True)]
    return [t / len(ckpts) for t in total or []]


def probs_frame(items: list[Item], probs: torch.Tensor, labelled: bool = False) -> pd.DataFrame:
    """`id` (+ `path`, `label` for labelled items) and the six probability columns, one row per item."""
    df = pd.DataFrame({"id": [it.id for it in items]})
    if labelled:
        df["path"] = [str(it.path) for it in items]
        df["label"] = [it.label for it in items]
    return pd.concat([df, pd.DataFrame(probs.double().numpy(), columns=PROB_COLUMNS)], axis=1)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write through a temporary file: a killed run never leaves half a CSV under the final name."""
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, float_format="%.6f"))
