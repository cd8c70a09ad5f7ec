"""Models by name and ensembles: `--ckpt` values, member folders, and members' probabilities averaged.

Design choices:
- soft voting: members' probabilities are averaged (not their labels), so a confident member counts
  more than a hesitant one, and the average is itself a probability table for stacking/blending; a
  parent's ENSEMBLE_FILE (written by `finetune.recipe`) weighs its kinds as they did on its validation
  clips (`member_weights`), else every member counts the same;
- members may differ in architecture, init and window length: nothing but the six emotions must match.
  Yet a recipe's members often share parts (its fine-tunes and probes hold their init's CNN, its probes
  the whole backbone): those are held and computed once (`w2v2.emotion.shared`), so an ensemble needs
  its distinct parts' memory and time;
- an ensemble run's folder (fold_1/, member_1_probe/, ...) stands for its members, a run folder for its
  best/; MEMBER_NAME is the one place that spells a member folder's name. A descriptors member
  (member_1_descriptors/) holds a travelling model as its best/ (`travel_folder`), not a network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from w2v2.checkpoint import PRETRAINED_DIR, CheckpointError, load_model, read_meta
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.travel import is_travel
from w2v2.model import Wav2Vec2ForClassification
from w2v2.training.runs import resolve_checkpoint

# an ensemble's members (finetune.recipe)
MEMBER_NAME = re.compile(r"(fold|member)_(\d+)(_probe|_scratch|_descriptors)?")
# each kind of member by its folder's suffix, in the order the recipe trains a unit's kinds
KINDS_BY_SUFFIX = {None: "finetune", "_probe": "probe", "_scratch": "scratch", "_descriptors": "descriptors"}


SHIPPED_CLASSIFIER = "pretrained:emotion"  # evaluate/predict/submit/serve without --ckpt (the model that travels)


def checkpoint_spec(text: str) -> Path:
    """The folder a --ckpt value names: pretrained:NAME is a model shipped in w2v2/pretrained/ (a shipped
    emotion classifier or ensemble), anything else a path."""
    kind, _, name = text.partition(":")
    if kind != "pretrained":
        return Path(text)
    shipped = sorted(p.name for p in PRETRAINED_DIR.iterdir() if p.is_dir()) if PRETRAINED_DIR.is_dir() else []
    if name not in shipped:
        raise ValueError(f"{text}: no shipped model {name!r} (shipped: {', '.join(shipped) or 'none'})")
    return PRETRAINED_DIR / name


def classifier_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory of a fine-tuning run folder or checkpoint, from its metadata alone (cheap:
    an ensemble's members are all checked before any is loaded); CheckpointError naming it for anything
    else (a pretraining run has no trained head)."""
    ckpt = resolve_checkpoint(path)
    meta = read_meta(ckpt)
    if meta["kind"] != "classifier":
        raise CheckpointError(f"{ckpt}: a {meta['kind']} checkpoint, not an emotion classifier; fine-tune it first: "
                              f"python -m finetune train --init ckpt:{path} --data DIR")
    # output column i means EMOTIONS[i] everywhere (CSVs, ensemble means): another order would be averaged and
    # written under the wrong names; a checkpoint without the list (older, converted) is taken as ours
    labels = meta.get("labels")
    if labels is not None and list(labels) != list(EMOTIONS):
        raise CheckpointError(f"{ckpt}: its classes are {', '.join(map(str, labels))}, not {', '.join(EMOTIONS)} "
                              "in that order; its probabilities cannot be read as this project's (or averaged "
                              "with other members')")
    return ckpt


def load_classifier(path: str | Path, device: torch.device | None = None) -> tuple[Wav2Vec2ForClassification, Path]:
    """(the six-emotion classifier on `device` (default the CPU), its checkpoint directory) of a fine-tuning
    run folder or checkpoint; CheckpointError naming it for anything else."""
    ckpt = classifier_checkpoint(path)
    model = load_model(ckpt).to(device or torch.device("cpu"))
    assert isinstance(model, Wav2Vec2ForClassification)  # classifier_checkpoint checked its kind
    if model.cfg.head.num_labels != len(EMOTIONS):
        raise CheckpointError(f"{ckpt}: a classifier of {model.cfg.head.num_labels} classes, not the "
                              f"{len(EMOTIONS)} emotions ({', '.join(EMOTIONS)}); fine-tune it first")
    return model.eval(), ckpt


def member_folders(path: Path) -> list[Path]:
    """The member folders of an ensemble run (fold_1/, fold_1_probe/, member_2/, ...), in the order the
    recipe trains them ([] for any other path)."""
    if not path.is_dir():
        return []
    found = [(m, d) for d in path.iterdir() if d.is_dir() and (m := MEMBER_NAME.fullmatch(d.name))]
    order = {suffix: i for i, suffix in enumerate(KINDS_BY_SUFFIX)}
    return [d for m, d in sorted(found, key=lambda md: (md[0].group(1), int(md[0].group(2)), order[md[0].group(3)]))]


ENSEMBLE_FILE = "ensemble.json"  # a parent's weight for each kind of member (finetune/weights.py)


def member_kind(folder: Path) -> str:
    """The kind of an ensemble's member folder, from its name (a fine-tune where the name says nothing)."""
    m = MEMBER_NAME.fullmatch(folder.name)
    return KINDS_BY_SUFFIX[m.group(3)] if m else "finetune"


def member_weights(parent: Path, parts: list[Path]) -> list[float]:
    """Each member's share of the vote, summing to len(parts): 1 each, or, where the parent holds
    ENSEMBLE_FILE, each kind's weight shared equally among its members (a kind the file does not name: 0)."""
    file = parent / ENSEMBLE_FILE
    if not parts or not file.is_file():
        return [1.0] * len(parts)
    weights = json.loads(file.read_text())["kind_weights"]
    kinds = [member_kind(p) for p in parts]
    shares = [float(weights.get(k, 0.0)) / kinds.count(k) for k in kinds]
    total = sum(shares)
    if total <= 0:
        raise ValueError(f"{file}: its kind weights give none of the members {', '.join(sorted(set(kinds)))} a vote")
    return [len(parts) * w / total for w in shares]


def voting(parent: Path, parts: list[Path]) -> list[Path]:
    """The members of `parts` that have a vote (`member_weights` > 0): the others are never run."""
    return [p for p, w in zip(parts, member_weights(parent, parts), strict=True) if w > 0]


def travel_folder(path: Path) -> Path | None:
    """The travelling model a folder is or holds as its best/ (a recipe's descriptors member), else None."""
    return next((p for p in (path, path / "best") if is_travel(p)), None)


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
