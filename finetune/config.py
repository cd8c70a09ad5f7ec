"""Fine-tuning configuration: a frozen dataclass; YAML files hold differences; key=value overrides."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

from w2v2.config import PROB, HeadConfig, from_dict, ranged, to_dict
from w2v2.data.audio import MIN_SECONDS
from w2v2.data.labels import EMOTIONS
from w2v2.training.cli import deep_merge, resolve

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


Kind = Literal["finetune", "probe", "scratch", "descriptors"]
# settings a scratch member takes from its run (the rest is RECIPES["scratch"] and `scratch.*`)
SHARED = ("device", "amp", "threads", "num_workers", "window_seconds", "tta", "balance", "val_fraction")


@dataclass(frozen=True)
class FinetuneConfig:
    """The defaults are the recipe for `pretrained:small` (the default init) on a CPU; `RECIPES` holds
    the differences for other inits, applied where no --config file is given."""

    # architecture from scratch (None: tiny); with an init, the init's weights decide it (another preset is reported)
    preset: str | None = None
    init: str = "pretrained:small"  # scratch | pretrained:NAME | hf:DIR_OR_ID | ckpt:PATH
    # the ensemble (finetune/recipe.py): `members` seeds, each with its own validation speakers, or `folds`
    # speaker-disjoint folds; each trains one model of every kind in `kinds` (finetune: the whole model from
    # init; probe: a linear probe on its frozen backbone; scratch: the tiny model from random weights, a
    # member unlike the other two; descriptors: linear heads over acoustic descriptors standardised per
    # speaker, the travelling model's recipe, finetune/descriptor_head.py), and their test probabilities are
    # averaged (docs/recipe.md)
    members: int = ranged(3, 1)
    folds: int = ranged(0, 0)  # 0: seeds; K >= 2: folds instead
    kinds: tuple[Kind, ...] = ("finetune", "probe", "scratch", "descriptors")
    # the scratch members' settings: RECIPES["scratch"] with these on top (scratch.epochs=10); the run's own
    # epochs, crops and learning rates are the fine-tune's
    scratch: dict[str, Any] = field(default_factory=dict)
    budget_minutes: float = ranged(0.0, 0)  # > 0: fewer seeds, then fewer epochs, until the estimate fits
    # overrides of the init's/preset's ModelConfig, as in pretraining (model.context.dropout=0.2); the
    # defaults are fine-tuning's regularisation: SpecAugment-style span masking, LayerDrop, dropout
    model: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(FINETUNE_MODEL))
    head: HeadConfig | None = None  # None: the checkpoint's head, or DEFAULT_HEAD for a new one
    freeze_feature_encoder: bool = True
    freeze_transformer_steps: int = ranged(0, 0)  # train only the head for the first N steps
    lr_head: float = ranged(1e-3, 0)
    lr_backbone: float = ranged(3e-4, 0)
    weight_decay: float = ranged(0.01, 0)
    warmup_fraction: float = ranged(0.1, **PROB)
    epochs: int = ranged(18, 1)
    probe_epochs: int = ranged(60, 1)  # `train --probe`: epochs of the head over cached features (cheap)
    max_steps: int = ranged(0, 0)  # 0: epochs decide
    batch_size: int = ranged(8, 1)
    # random crops while training; at least the CNN's receptive field (400 samples), else all padding
    crop_seconds: float = ranged(3.0, MIN_SECONDS)
    window_seconds: float = ranged(8.0, MIN_SECONDS)  # evaluation/prediction windows for long clips (50% overlap)
    # test-time augmentation of the final validation/test predictions: each window is also predicted at
    # these speeds and the probabilities averaged, e.g. [0.9, 1.0, 1.1]; () = off (every view costs a forward)
    tta: tuple[float, ...] = ranged((), 0, lo_open=True)
    balance: Literal["none", "loss", "sampler"] = "loss"
    augment: bool = True
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    val_fraction: float = ranged(0.15, 0, 1, lo_open=True, hi_open=True)  # both splits need clips
    patience: int = ranged(18, 1)  # epochs without a better validation UAR before stopping
    grad_clip: float = ranged(1.0, 0, lo_open=True)
    # the frozen CNN's output computed once per clip and view (finetune/features.py) instead of every step
    feature_cache: bool = True
    cache_views: int = ranged(3, 1)  # with augment: the clip as recorded + (cache_views - 1) augmented views
    feature_cache_gb: float = ranged(4.0, 0)  # above it fewer views, then no cache
    # mixed precision of the training steps (evaluation and prediction stay fp32). auto: bf16 where the
    # device computes it natively (a GPU that has it; a CPU with AVX512-BF16 or AMX), fp16 on other GPUs
    amp: Literal["auto", "none", "bf16", "fp16"] = "auto"
    device: str = "auto"  # auto (a GPU where there is one) | cpu | cuda | cuda:N
    num_workers: int = ranged(0, 0)  # processes decoding audio (0: the main process)
    seed: int = ranged(0, 0, 2**31 - 1)  # members take seed, seed + 1, ...: all stay valid numpy seeds (< 2**32)
    threads: int = ranged(0, 0)  # torch CPU threads (of each member trained at once); 0 = torch's default
    # members trained at once, each in its own process (on a CPU; finetune/parallel.py); 0 = one per core
    # (cores // threads with threads=N) as memory allows
    workers: int = ranged(0, 0)


# Differences from the defaults (pretrained:small's recipe) by the kind of init, where no --config is given
RECIPES: dict[str, dict[str, Any]] = {
    # the tiny model from random weights: the zero-download baseline and the default's third member; its CNN
    # must learn. 80 epochs: at 30 (patience 10) it had not converged (docs/recipe.md)
    "scratch": {"preset": "tiny", "freeze_feature_encoder": False, "lr_backbone": 1e-3, "epochs": 80,
                "patience": 20, "members": 1, "kinds": ["finetune"]},
    # a transformers checkpoint (facebook/wav2vec2-base-style): a gentler backbone rate after a head-only start;
    # no tiny member (unmeasured next to a model that strong, it would weigh a third of the vote)
    "hf": {"freeze_transformer_steps": 500, "lr_head": 5e-4, "lr_backbone": 3e-5, "epochs": 20, "patience": 8,
           "crop_seconds": 6.0, "kinds": ["finetune", "probe"]},
}


def init_kind(init: str) -> str:
    """scratch | pretrained | hf | ckpt: the part of an init spec before its colon."""
    return init.partition(":")[0]


def resolve_run(config_path: str | None, overrides: list[str]) -> FinetuneConfig:
    """Defaults, then the init's recipe (`RECIPES`, only without a config file), then the YAML file, then
    key=value overrides (`w2v2.training.cli.resolve`, as pretraining). A typo in `scratch.*` fails here."""
    cfg, given = resolve(FinetuneConfig, config_path, overrides)
    cfg = cfg if config_path is not None else with_recipe(cfg.init, given)
    scratch_config(cfg, cfg.seed)
    return cfg


def scratch_config(cfg: FinetuneConfig, seed: int) -> FinetuneConfig:
    """The config of a `scratch` member of run `cfg`: the scratch recipe, the run's device, precision and
    evaluation settings (`SHARED`), then `cfg.scratch`."""
    shared = {k: v for k, v in to_dict(cfg).items() if k in SHARED}
    try:
        return with_recipe("scratch", deep_merge({**shared, "init": "scratch", "seed": seed}, cfg.scratch))
    except ValueError as e:
        raise ValueError(f"scratch.*: {e}") from None


def with_recipe(init: str, given: dict[str, Any]) -> FinetuneConfig:
    """The defaults, then `init`'s recipe (`RECIPES`, none for pretrained: and ckpt:), then `given` (nested)."""
    return from_dict(FinetuneConfig, deep_merge(deep_merge(to_dict(FinetuneConfig()),
                                                           RECIPES.get(init_kind(init), {})), given))
