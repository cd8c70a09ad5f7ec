"""Fine-tuning configuration: a frozen dataclass; YAML files hold differences; key=value overrides."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

from w2v2.config import PROB, HeadConfig, ranged, resolve
from w2v2.data.audio import MIN_SECONDS
from w2v2.data.labels import EMOTIONS

DEFAULT_HEAD = HeadConfig(num_labels=len(EMOTIONS), weighted_layer_sum=True)
FINETUNE_MODEL: dict[str, Any] = {
    "masking": {"mask_prob": 0.05, "mask_length": 10},
    "context": {"layerdrop": 0.05, "dropout": 0.1, "attention_dropout": 0.1, "input_dropout": 0.1},
}


@dataclass(frozen=True)
class AugmentConfig:
    speeds: tuple[float, ...] = ranged((0.9, 1.0, 1.1), 0, lo_open=True)  # speed perturbation (Ko et al., 2015)
    gain_db: float = ranged(6.0, 0)  # uniform +-gain
    noise_prob: float = ranged(0.5, **PROB)
    noise_snr_db: tuple[float, float] = (15.0, 40.0)


@dataclass(frozen=True)
class FinetuneConfig:
    # architecture from scratch (None: tiny); with an init, the init's weights decide it (another preset is reported)
    preset: str | None = None
    init: str = "scratch"  # scratch | pretrained:NAME | hf:DIR_OR_ID | ckpt:PATH
    # overrides of the init's/preset's ModelConfig, as in pretraining (model.context.dropout=0.2); the
    # defaults are fine-tuning's regularisation: SpecAugment-style span masking, LayerDrop, dropout
    model: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(FINETUNE_MODEL))
    head: HeadConfig | None = None  # None: the checkpoint's head, or DEFAULT_HEAD for a new one
    freeze_feature_encoder: bool = True
    freeze_transformer_steps: int = ranged(0, 0)  # train only the head for the first N steps
    lr_head: float = ranged(1e-3, 0)
    lr_backbone: float = ranged(5e-5, 0)
    weight_decay: float = ranged(0.01, 0)
    warmup_fraction: float = ranged(0.1, **PROB)
    epochs: int = ranged(10, 1)
    probe_epochs: int = ranged(60, 1)  # `train --probe`: epochs of the head over cached features (cheap)
    max_steps: int = ranged(0, 0)  # 0: epochs decide
    batch_size: int = ranged(8, 1)
    # random crops while training; at least the CNN's receptive field (400 samples), else all padding
    crop_seconds: float = ranged(6.0, MIN_SECONDS)
    window_seconds: float = ranged(8.0, MIN_SECONDS)  # evaluation/prediction windows for long clips (50% overlap)
    # test-time augmentation of the final validation/test predictions: each window is also predicted at
    # these speeds and the probabilities averaged, e.g. [0.9, 1.0, 1.1]; () = off (every view costs a forward)
    tta: tuple[float, ...] = ranged((), 0, lo_open=True)
    balance: Literal["none", "loss", "sampler"] = "loss"
    augment: bool = True
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    val_fraction: float = ranged(0.15, 0, 1, lo_open=True, hi_open=True)  # both splits need clips
    patience: int = ranged(4, 1)  # epochs without a better validation UAR before stopping
    grad_clip: float = ranged(1.0, 0, lo_open=True)
    # mixed precision of the training steps (evaluation and prediction stay fp32). auto: bf16 where the
    # CPU computes it natively (AVX512-BF16 or AMX: ~1.8x faster steps); fine-tuning runs on the CPU
    amp: Literal["auto", "none", "bf16"] = "auto"
    seed: int = 0
    threads: int = ranged(0, 0)  # torch CPU threads; 0 = torch's default


def resolve_run(config_path: str | None, overrides: list[str]) -> FinetuneConfig:
    """Defaults, then the YAML file, then key=value overrides (`w2v2.config.resolve`, as pretraining)."""
    return resolve(FinetuneConfig, config_path, overrides)[0]
