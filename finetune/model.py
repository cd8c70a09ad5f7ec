"""Build the classifier for fine-tuning from scratch, a transformers checkpoint or a w2v2 checkpoint."""

from __future__ import annotations

import torch

from finetune.config import DEFAULT_HEAD, FinetuneConfig
from w2v2.checkpoint import load_model, resolve_checkpoint
from w2v2.config import merge, preset, to_dict
from w2v2.convert import load_hf
from w2v2.labels import EMOTIONS
from w2v2.model import Wav2Vec2ForClassification, build_model


def _load_init(init: str) -> Wav2Vec2ForClassification | None:
    if init == "scratch":
        return None
    kind, _, where = init.partition(":")
    if kind == "hf" and where:
        return load_hf(where, kind="classifier")
    if kind == "ckpt" and where:
        return load_model(resolve_checkpoint(where), kind="classifier")
    raise ValueError(f"init={init!r}: use scratch, hf:DIR_OR_ID or ckpt:PATH")


def build_classifier(cfg: FinetuneConfig) -> Wav2Vec2ForClassification:
    """A six-emotion classifier; the source's head is kept where it fits (same head, six labels)."""
    source = _load_init(cfg.init)
    base_cfg = source.cfg if source is not None else preset(cfg.preset)
    source_head_fits = source is not None and source.cfg.head.num_labels == len(EMOTIONS)
    head = cfg.head or (source.cfg.head if source_head_fits else DEFAULT_HEAD)
    model_cfg = merge(base_cfg, {
        "head": {**to_dict(head), "num_labels": len(EMOTIONS)},
        "masking": {"mask_prob": cfg.mask_prob, "mask_length": cfg.mask_length},
        "context": {"layerdrop": cfg.layerdrop, "dropout": cfg.dropout, "attention_dropout": cfg.dropout,
                    "input_dropout": cfg.dropout},
    })
    torch.manual_seed(cfg.seed)
    model = build_model(model_cfg, "classifier")
    if source is not None:
        model.load_backbone_from(source)
        if source_head_fits and model.cfg.head == source.cfg.head:
            model.head.load_state_dict(source.head.state_dict())
    return model
