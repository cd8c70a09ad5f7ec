"""Pretraining configuration: frozen dataclasses; YAML holds differences; dotted key=value overrides.

`model` holds overrides of the chosen preset's ModelConfig (checked against it), so a YAML file or
the command line can change any model field: `model.masking.mask_prob=0.5`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from w2v2.checkpoint import init_config
from w2v2.config import ModelConfig, from_dict, load_yaml, merge, parse_overrides, preset


@dataclass(frozen=True)
class DataConfig:
    # a folder (scanned recursively), a CSV/TSV manifest, a competition folder (its train and test audio,
    # labels ignored), or a list of these; "" = the built-in synthetic corpus
    path: tuple[str, ...] | str = ""
    synthetic_clips: int = 300
    max_seconds: float = 15.625  # random crops (250k samples, the paper's base recipe)
    min_seconds: float = 0.5  # shorter files are skipped
    max_batch_seconds: float = 80.0  # padded audio per batch (per rank)
    strict: bool = False  # stop at the first unusable file instead of skipping it


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.01
    warmup_steps: int = 32000
    max_steps: int = 400000
    decay: Literal["linear", "cosine"] = "linear"
    grad_clip: float = 10.0
    accumulate: int = 1  # gradient accumulation
    amp: Literal["auto", "none", "bf16", "fp16"] = "auto"  # auto: bf16 on GPUs that have it, else none


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
    seed: int = 0
    log_every: int = 10
    save_every: int = 1000
    keep_checkpoints: int = 2
    max_nonfinite: int = 20  # consecutive non-finite losses before the run stops
    device: str = "auto"
    threads: int = 0
    compile: bool = False  # torch.compile the model as one graph; needs model.context.layerdrop=0


def deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve(config_path: str | None, overrides: list[str]) -> tuple[PretrainConfig, ModelConfig]:
    """The run config (YAML, then overrides) and the model config it describes; both type-checked."""
    data = load_yaml(config_path) if config_path else {}
    data = deep_merge(data, parse_overrides(overrides))
    cfg = from_dict(PretrainConfig, data)
    base = init_config(cfg.init)
    if base is not None and "preset" in data:
        print(f"note: init={cfg.init} brings its own architecture; preset={cfg.preset} is not used")
    model_cfg = merge(base or preset(cfg.preset), cfg.model, prefix="model.")
    return cfg, model_cfg
