"""Build the classifier for fine-tuning from scratch, a transformers checkpoint or a w2v2 checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch

from finetune.config import DEFAULT_HEAD, FinetuneConfig
from w2v2.checkpoint import PRETRAINED_DIR, CheckpointError, load_model, read_meta
from w2v2.config import ModelConfig, merge, to_dict
from w2v2.data.labels import EMOTIONS
from w2v2.model import Wav2Vec2ForClassification, build_model
from w2v2.training.cli import resolve_model
from w2v2.training.runs import init_config, load_init, resolve_checkpoint


def build_classifier(cfg: FinetuneConfig) -> Wav2Vec2ForClassification:
    """A six-emotion classifier: the init's backbone (or random weights of `preset` + `model`), and
    the init's head only where it was a six-emotion classifier with the same head config."""
    source = load_init(cfg.init, None)  # its own kind: a pretraining checkpoint has no head to keep
    source_cfg = cast(ModelConfig, source.cfg) if source is not None else None  # every w2v2 model has one
    base_cfg = resolve_model(cfg.preset, cfg.init, source_cfg, cfg.model)
    head_source = (source if isinstance(source, Wav2Vec2ForClassification)
                   and source.cfg.head.num_labels == len(EMOTIONS) else None)  # a six-emotion head to keep
    head = cfg.head or (head_source.cfg.head if head_source is not None else DEFAULT_HEAD)
    model_cfg = merge(base_cfg, {"head": {**to_dict(head), "num_labels": len(EMOTIONS)}})
    torch.manual_seed(cfg.seed)
    model = build_model(model_cfg, "classifier")
    if source is not None:
        model.load_backbone_from(source)
        if head_source is not None and model.cfg.head == head_source.cfg.head:
            model.head.load_state_dict(head_source.head.state_dict())
    return model


def check_model(cfg: FinetuneConfig) -> None:
    """The model config `build_classifier` will build, resolved from the init's config alone (no weights):
    a bad `model.*` override fails here, before a run folder is touched."""
    resolve_model(cfg.preset, cfg.init, init_config(cfg.init), cfg.model)


SHIPPED_CLASSIFIER = "pretrained:emotion-ravdess"  # evaluate/predict/serve without --ckpt


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
