"""Pretraining configuration: frozen dataclasses; YAML holds differences; dotted key=value overrides.

`model` holds overrides of the chosen preset's ModelConfig (checked against it), so a YAML file or
the command line can change any model field: `model.masking.mask_prob=0.5`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from w2v2.config import ModelConfig, ranged
from w2v2.data.audio import MIN_SECONDS
from w2v2.training.cli import resolve, resolve_model
from w2v2.training.runs import init_config


@dataclass(frozen=True)
class DataConfig:
    # a folder (scanned recursively), an audio file, a CSV/TSV manifest, a competition folder (its train and
    # test audio, labels ignored), or a list of these; "" = the built-in synthetic corpus
    path: tuple[str, ...] | str = ""
    synthetic_clips: int = ranged(300, 1)
    max_seconds: float = ranged(15.625, MIN_SECONDS)  # random crops (250k samples, the paper's base recipe)
    min_seconds: float = ranged(0.5, MIN_SECONDS)  # shorter files are skipped
    max_batch_seconds: float = ranged(80.0, MIN_SECONDS)  # padded audio per batch (per rank)
    strict: bool = False  # stop at the first unusable file instead of skipping it


@dataclass(frozen=True)
class OptimConfig:
    lr: float = ranged(5e-4, 0)
    betas: tuple[float, float] = ranged((0.9, 0.98), 0, 1, hi_open=True)
    eps: float = ranged(1e-6, 0, lo_open=True)
    weight_decay: float = ranged(0.01, 0)
    warmup_steps: int = ranged(32000, 0)
    max_steps: int = ranged(400000, 1)
    decay: Literal["linear", "cosine"] = "linear"
    grad_clip: float = ranged(10.0, 0, lo_open=True)
    accumulate: int = ranged(1, 1)  # gradient accumulation
    amp: Literal["auto", "none", "bf16", "fp16"] = "auto"  # auto: bf16 where the device computes it natively


@dataclass(frozen=True)
class PretrainConfig:
    preset: str = "tiny"  # the architecture when init=scratch
    # scratch | pretrained:NAME | hf:DIR_OR_ID | ckpt:PATH: continued (domain-adaptive) pretraining from
    # those weights; their architecture replaces the preset (`model` still overrides it)
    init: str = "scratch"
    model: dict[str, Any] = field(default_factory=dict)  # overrides of the preset's (or init's) ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run_dir: str = "runs/pretrain"
    resume: str = "auto"  # auto: continue from the run's latest checkpoint; none: start over; or a checkpoint
    seed: int = ranged(0, 0, 2**31 - 1)  # a numpy seed (the sampler), also after pretrain.train.reseed's mixing
    log_every: int = ranged(10, 1)
    save_every: int = ranged(1000, 1)
    keep_checkpoints: int = ranged(2, 0)  # 0: keep all
    max_nonfinite: int = ranged(20, 1)  # consecutive non-finite losses before the run stops
    device: str = "auto"
    threads: int = ranged(0, 0)
    compile: bool = False  # torch.compile the model as one graph; needs model.context.layerdrop=0


def resolve_run(config_path: str | None, overrides: list[str]) -> tuple[PretrainConfig, ModelConfig]:
    """The run config (YAML, then overrides) and the model config it describes; both type-checked."""
    cfg, given = resolve(PretrainConfig, config_path, overrides, informational=("resolved_model",))
    return cfg, resolve_model(given.get("preset"), cfg.init, init_config(cfg.init), cfg.model)
