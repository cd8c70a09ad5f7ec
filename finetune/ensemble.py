"""Ensembles and probability files: several fine-tuned models' class probabilities, averaged.

Design choices:
- soft voting: members' probabilities are averaged (not their labels), so a confident member counts
  more than a hesitant one, and the average is itself a probability table for stacking/blending;
- members may differ in architecture, init and window length: each predicts on its own, so nothing
  but the six emotions must match;
- members are loaded one at a time: an ensemble needs one model's memory, not k models';
- an ensemble run's folder (fold_1/, member_1_probe/, ...) stands for its members, a run folder for its best/.
Probability columns are `p_<emotion>` in every file we write (predict --out, test_probs.csv,
val_probs.csv, oof_probs.csv, timelines), so they can be joined and blended without renaming.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from einops import reduce

from finetune.data import predict_probs, window_probs
from finetune.model import classifier_checkpoint, load_classifier
from finetune.outputs import MEMBER_NAME
from w2v2.checkpoint import CheckpointError, read_meta
from w2v2.model import Wav2Vec2ForClassification


def member_folders(path: Path) -> list[Path]:
    """The member folders of an ensemble run (fold_1/, fold_1_probe/, member_2/, ...), in the order the
    recipe trains them ([] for any other path)."""
    if not path.is_dir():
        return []
    found = [(m, d) for d in path.iterdir() if d.is_dir() and (m := MEMBER_NAME.fullmatch(d.name))]
    order = {None: 0, "_probe": 1, "_scratch": 2}
    return [d for m, d in sorted(found, key=lambda md: (md[0].group(1), int(md[0].group(2)), order[md[0].group(3)]))]


def members(paths: list[Path]) -> list[Path]:
    """The checkpoint directories of --ckpt arguments (ensemble parents expanded to their members), each
    checked to be a classifier before any model is loaded; a member given twice counts twice."""
    return [classifier_checkpoint(p) for path in paths for p in (member_folders(path) or [path])]


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
                   tta: tuple[float, ...] = (), progress: bool = False, device: torch.device | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean probabilities (n, 6), each member's (m, n, 6)) of clips (s,), each member run on `device`
    (default the CPU). window_seconds None: each member uses the window it was trained with."""
    each = []
    for ckpt in ckpts:
        model, _ = load_classifier(ckpt, device)
        with blamed(ckpt):
            each.append(predict_probs(model, waves, window_seconds or trained_window(ckpt), progress=progress,
                                      tta=tta))
    stacked = torch.stack(each)
    return reduce(stacked, "m n l -> n l", "mean"), stacked


def ensemble_window_probs(ckpts: list[Path], waves: list[torch.Tensor], window_seconds: float,
                          hop_seconds: float | None = None, tta: tuple[float, ...] = (),
                          progress: bool = False, device: torch.device | None = None) -> list[torch.Tensor]:
    """Per clip, (windows, 6): each window's probabilities averaged over the members (same windows for all),
    each member run on `device` (default the CPU)."""
    loaded = ((ckpt, load_classifier(ckpt, device)[0]) for ckpt in ckpts)  # one model in memory at a time
    return mean_window_probs(loaded, waves, window_seconds, hop_seconds, tta, progress)


def mean_window_probs(models: Iterable[tuple[Path, Wav2Vec2ForClassification]], waves: list[torch.Tensor],
                      window_seconds: float, hop_seconds: float | None = None, tta: tuple[float, ...] = (),
                      progress: bool = False) -> list[torch.Tensor]:
    """`ensemble_window_probs` of (checkpoint, model) pairs already loaded (the web app keeps them)."""
    total: list[torch.Tensor] | None = None
    count = 0
    for ckpt, model in models:
        with blamed(ckpt):
            probs = window_probs(model, waves, window_seconds, hop_seconds, tta, progress=progress)
        total = probs if total is None else [t + p for t, p in zip(total, probs, strict=True)]
        count += 1
    return [t / count for t in total or []]
