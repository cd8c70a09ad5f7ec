"""Build the classifier for fine-tuning from scratch, a transformers checkpoint or a w2v2 checkpoint."""

from __future__ import annotations

from typing import cast

import torch

from finetune.config import DEFAULT_HEAD, FinetuneConfig
from w2v2.config import ModelConfig, merge, to_dict
from w2v2.data.labels import EMOTIONS
from w2v2.model import Wav2Vec2ForClassification, build_model
from w2v2.training.cli import resolve_model
from w2v2.training.runs import init_config, load_init


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


def check_model(cfg: FinetuneConfig) -> ModelConfig:
    """The model config `build_classifier` will build, resolved from the init's config alone (no weights):
    a bad `model.*` override fails here, before a run folder is touched."""
    return resolve_model(cfg.preset, cfg.init, init_config(cfg.init), cfg.model)


