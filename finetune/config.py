"""Fine-tuning configuration: a frozen dataclass; YAML files hold differences; key=value overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from w2v2.config import HeadConfig, apply_overrides, load_yaml, merge

DEFAULT_HEAD = HeadConfig(weighted_layer_sum=True)


@dataclass(frozen=True)
class AugmentConfig:
    speeds: tuple[float, ...] = (0.9, 1.0, 1.1)  # speed perturbation (Ko et al., 2015)
    gain_db: float = 6.0  # uniform +-gain
    noise_prob: float = 0.5
    noise_snr_db: tuple[float, float] = (15.0, 40.0)


@dataclass(frozen=True)
class FinetuneConfig:
    preset: str = "tiny"  # architecture when starting from scratch
    init: str = "scratch"  # scratch | pretrained:NAME | hf:DIR_OR_ID | ckpt:PATH
    model: dict[str, Any] = field(default_factory=dict)  # overrides of the init's/preset's ModelConfig
    head: HeadConfig | None = None  # None: the checkpoint's head, or DEFAULT_HEAD for a new one
    mask_prob: float = 0.05  # SpecAugment-style span masking while fine-tuning
    mask_length: int = 10
    layerdrop: float = 0.05
    dropout: float = 0.1
    freeze_feature_encoder: bool = True
    freeze_transformer_steps: int = 0  # train only the head for the first N steps
    lr_head: float = 1e-3
    lr_backbone: float = 5e-5
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    epochs: int = 10
    max_steps: int = 0  # 0: epochs decide
    batch_size: int = 8
    crop_seconds: float = 6.0  # random crops while training
    window_seconds: float = 8.0  # evaluation/prediction windows for long clips (50% overlap)
    balance: Literal["none", "loss", "sampler"] = "loss"
    augment: bool = True
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    val_fraction: float = 0.15
    patience: int = 4  # epochs without a better validation UAR before stopping
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = torch's default


def resolve_config(config_path: str | None, overrides: list[str]) -> FinetuneConfig:
    cfg = FinetuneConfig()
    if config_path:
        cfg = merge(cfg, load_yaml(config_path))
    return apply_overrides(cfg, overrides)
