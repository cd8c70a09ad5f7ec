"""Model configuration: one frozen dataclass per paper component, nested in `ModelConfig`.

Presets: `tiny` (tests, CPU demos), `base` (= facebook/wav2vec2-base architecture) and `large`
(= facebook/wav2vec2-large-lv60 architecture). Any nested frozen dataclass, model or training
config, can be built from a dict (`from_dict`), dumped (`to_dict`), and changed with dotted
`key=value` overrides (`apply_overrides`) that are type-checked; unknown keys are errors.

Ranges: a numeric field declared with `ranged(default, lo, hi)` is checked wherever a value enters
(YAML, overrides, a checkpoint's stored config), by `merge`, for every config class of both CLIs;
floats must also be finite. Defaults and presets are trusted.
"""

from __future__ import annotations

import functools
import math
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar, cast

import yaml

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

SAMPLE_RATE = 16000  # Hz: the model's input; every loader resamples to it


@dataclass(frozen=True)
class Range:
    """Allowed interval of a numeric field (or of each item of a numeric tuple)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # True: lo itself is not allowed
    hi_open: bool = False

    def __str__(self) -> str:
        lo, hi = _number(self.lo), _number(self.hi)
        if self.hi is None:
            return f"{'>' if self.lo_open else '>='} {lo}"
        if self.lo is None:
            return f"{'<' if self.hi_open else '<='} {hi}"
        return f"{'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"

    def contains(self, v: float) -> bool:
        above = self.lo is None or (v > self.lo if self.lo_open else v >= self.lo)
        below = self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)
        return above and below


def _number(x: float | None) -> str:
    """An int in full (a seed's 2147483647), a float short (0.025)."""
    return str(x) if x is None or isinstance(x, int) else f"{x:g}"


def ranged(default: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False) -> Any:
    """A dataclass field whose values `merge` checks against [lo, hi] (open ends where asked)."""
    return field(default=default, metadata={"range": Range(lo, hi, lo_open, hi_open)})


def check_range(cls: type, name: str, value: Any, key: str | None = None) -> Any:
    """`value` if it lies in field `name`'s declared range (every item, for a tuple); else ValueError."""
    rng = next((f.metadata.get("range") for f in fields(cls) if f.name == name), None)
    items = value if isinstance(value, tuple) else (value,)
    if rng is not None and any(isinstance(v, int | float) and not rng.contains(v) for v in items):
        raise ValueError(f"{key or name}={value!r} is out of range: must be {rng}")
    return value


class _Bounds(TypedDict, total=False):  # `ranged`'s keyword arguments
    lo: float
    hi: float
    hi_open: bool


PROB: _Bounds = {"lo": 0.0, "hi": 1.0}  # a probability: [0, 1]
DROP: _Bounds = {"lo": 0.0, "hi": 1.0, "hi_open": True}  # a dropout rate: [0, 1)


@dataclass(frozen=True)
class FeatureEncoderConfig:
    """CNN feature encoder (paper §2): raw 16 kHz audio -> z, one frame per 20 ms."""

    conv_dim: tuple[int, ...] = ranged((512,) * 7, 1)
    conv_kernel: tuple[int, ...] = ranged((10, 3, 3, 3, 3, 2, 2), 1)
    conv_stride: tuple[int, ...] = ranged((5, 2, 2, 2, 2, 2, 2), 1)
    norm: Literal["group", "layer"] = "group"  # group: base (GN on layer 0); layer: large (LN everywhere)
    conv_bias: bool = False
    grad_scale: float = ranged(1.0, 0)  # fairseq feature_grad_mult: scales the gradient reaching the CNN

    @property
    def receptive_field(self) -> int:
        """Samples one output frame sees: the shortest input that yields a frame (400 for the paper's CNN)."""
        field, jump = 1, 1
        for k, s in zip(self.conv_kernel, self.conv_stride, strict=True):
            field += (k - 1) * jump
            jump *= s
        return field

    @property
    def hop(self) -> int:
        """Samples between consecutive frames (320 for the paper's CNN: 20 ms at 16 kHz)."""
        return math.prod(self.conv_stride)


@dataclass(frozen=True)
class ContextConfig:
    """Transformer context network with convolutional relative positional embedding."""

    dim: int = ranged(768, 1)
    layers: int = ranged(12, 1)
    heads: int = ranged(12, 1)
    ffn_dim: int = ranged(3072, 1)
    layer_norm_first: bool = False  # False: post-LN (base); True: pre-LN / "stable layer norm" (large)
    pos_conv_kernel: int = ranged(128, 1)
    pos_conv_groups: int = ranged(16, 1)
    dropout: float = ranged(0.1, **DROP)  # residual dropout
    attention_dropout: float = ranged(0.1, **DROP)
    activation_dropout: float = ranged(0.0, **DROP)
    input_dropout: float = ranged(0.1, **DROP)  # after the feature projection
    layerdrop: float = ranged(0.1, **DROP)
    layer_norm_eps: float = ranged(1e-5, 0, lo_open=True)


@dataclass(frozen=True)
class MaskingConfig:
    """Span masking of the context network's input (paper §3.1)."""

    mask_prob: float = ranged(0.65, **PROB)  # probability of each frame starting a span (fairseq semantics)
    mask_length: int = ranged(10, 1)
    min_masks: int = ranged(2, 0)


@dataclass(frozen=True)
class QuantizerConfig:
    """Gumbel-softmax product quantizer (paper §2, §3.2)."""

    groups: int = ranged(2, 1)
    codewords: int = ranged(320, 2)
    codevector_dim: int = ranged(256, 1)  # concatenated over groups
    temp_max: float = ranged(2.0, 0, lo_open=True)
    temp_min: float = ranged(0.5, 0, lo_open=True)
    temp_decay: float = ranged(0.999995, 0, 1, lo_open=True)


@dataclass(frozen=True)
class ObjectiveConfig:
    """Contrastive + diversity (+ feature penalty) objective (paper §3.2)."""

    proj_dim: int = ranged(256, 1)  # shared space of projected c and projected q
    num_negatives: int = ranged(100, 1)
    logit_temp: float = ranged(0.1, 0, lo_open=True)  # kappa
    diversity_weight: float = ranged(0.1, 0)  # alpha
    feature_penalty: float = ranged(0.0, 0)  # L2 penalty on z; fairseq's base recipe uses 10
    features_dropout: float = ranged(0.0, **DROP)  # dropout on the quantizer input


@dataclass(frozen=True)
class HeadConfig:
    """Utterance classification head (emotion recognition in this project)."""

    num_labels: int = ranged(2, 1)  # as transformers' default; the task sets it (finetune: the 6 emotions)
    weighted_layer_sum: bool = False
    projector_dim: int = ranged(256, 1)
    pooling: Literal["mean", "attentive_stats"] = "mean"
    dropout: float = ranged(0.0, **DROP)  # on the pooled vector
    # fixed per-layer, per-dimension standardisation of the hidden states before the layer sum (buffers a
    # trainer fills, e.g. `finetune train --probe` with its training clips' statistics; no transformers equivalent)
    standardize: bool = False


@dataclass(frozen=True)
class ModelConfig:
    encoder: FeatureEncoderConfig = field(default_factory=FeatureEncoderConfig)
    context: ContextConfig = field(default_factory=ContextConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    # Per-utterance zero-mean unit-variance input normalisation (HF feature extractor's do_normalize).
    normalize_waveform: bool = False
    # Recompute CNN and Transformer activations in the backward pass: less memory, ~30% more compute.
    gradient_checkpointing: bool = False

    def architecture(self) -> tuple:
        """The fields that decide the weights' shapes (not dropout, masking, the head or the objective)."""
        return tuple(self.get(key) for key in ARCHITECTURE)

    def get(self, key: str) -> Any:
        """A field by its dotted name: cfg.get("context.dim")."""
        return functools.reduce(getattr, key.split("."), self)

    @property
    def frame_rate_hz(self) -> float:
        return SAMPLE_RATE / self.encoder.hop


# ModelConfig.architecture(): what a model's weights are shaped by, so what a pretrained init fixes
ARCHITECTURE = ("encoder.conv_dim", "encoder.conv_kernel", "encoder.conv_stride", "encoder.norm", "encoder.conv_bias",
                "context.dim", "context.layers", "context.heads", "context.ffn_dim", "context.layer_norm_first",
                "context.pos_conv_kernel", "context.pos_conv_groups")


def _tiny() -> ModelConfig:
    return ModelConfig(
        encoder=FeatureEncoderConfig(conv_dim=(32,) * 7),
        context=ContextConfig(dim=64, layers=2, heads=4, ffn_dim=128, pos_conv_kernel=16, pos_conv_groups=4,
                              layerdrop=0.0),
        masking=MaskingConfig(mask_prob=0.65, mask_length=4),
        quantizer=QuantizerConfig(groups=2, codewords=32, codevector_dim=32),
        objective=ObjectiveConfig(proj_dim=32, num_negatives=10),
        head=HeadConfig(projector_dim=32),
    )


def _small() -> ModelConfig:
    """A CPU-sized model (3.7M parameters in the backbone): the large variant's layer-norm CNN and
    pre-LN Transformer (stable, and a clip's features never depend on padding), narrow early
    convolutions (the 3.2 kHz and 1.6 kHz layers dominate CNN time), 4 layers of width 256. Its
    speed is measured in docs/pretrained-small.md."""
    return ModelConfig(
        encoder=FeatureEncoderConfig(conv_dim=(64, 64, 128, 128, 128, 128, 128), norm="layer", conv_bias=True),
        context=ContextConfig(dim=256, layers=4, heads=4, ffn_dim=1024, layer_norm_first=True, pos_conv_kernel=64,
                              pos_conv_groups=16, layerdrop=0.0),
        quantizer=QuantizerConfig(groups=2, codewords=128, codevector_dim=128),
        objective=ObjectiveConfig(proj_dim=128),
        normalize_waveform=True,
    )


def _large() -> ModelConfig:
    return ModelConfig(
        encoder=FeatureEncoderConfig(norm="layer", conv_bias=True),
        context=ContextConfig(dim=1024, layers=24, heads=16, ffn_dim=4096, layer_norm_first=True),
        quantizer=QuantizerConfig(codevector_dim=768),
        objective=ObjectiveConfig(proj_dim=768),
    )


PRESETS: dict[str, typing.Callable[[], ModelConfig]] = {"tiny": _tiny, "small": _small, "base": ModelConfig,
                                                         "large": _large}


def preset(name: str) -> ModelConfig:
    """The named architecture: 'tiny', 'small', 'base' or 'large'."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


# ---------------------------------------------------------------------------------------------
# Generic (de)serialisation and overrides for nested frozen dataclasses.


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict (tuples as lists) of a nested dataclass, safe for YAML/JSON."""

    def plain(v: Any) -> Any:
        if is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in fields(v)}
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`, converting where lossless (int->float, list->tuple)."""
    origin = typing.get_origin(tp)
    if is_dataclass(tp):
        if is_dataclass(value):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(cast("type[DataclassInstance]", tp), value, prefix=key + ".")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ValueError(f"{key}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, typing.get_args(tp), key)
    if origin is tuple:
        return _coerce_tuple(value, typing.get_args(tp), key)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    return _coerce_scalar(value, tp, key)


def _coerce_union(value: Any, args: tuple[Any, ...], key: str) -> Any:
    """The first of a union's types that `value` coerces to (None where the union allows it)."""
    if value is None and type(None) in args:
        return None
    errors = []
    for a in args:
        if a is type(None):
            continue
        try:
            return _coerce(value, a, key)
        except ValueError as e:
            errors.append(str(e))
    raise ValueError("; ".join(errors))


def _coerce_tuple(value: Any, args: tuple[Any, ...], key: str) -> tuple:
    """A list or tuple as tuple[T, ...] or a fixed tuple[A, B, ...], each item coerced."""
    if not isinstance(value, list | tuple):
        raise ValueError(f"{key}: expected a list, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if len(args) != len(value):
        raise ValueError(f"{key}: expected {len(args)} items, got {len(value)}")
    return tuple(_coerce(v, a, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))


def _coerce_scalar(value: Any, tp: Any, key: str) -> Any:
    """float (finite; from int or a YAML string), int, bool, str or Any."""
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 (PyYAML) reads 1e-4, unlike 1.0e-4, as a string
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{key}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):  # nan/inf would train silently into a NaN model
            raise ValueError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is str:
        return value if isinstance(value, str) else str(value)
    if tp is Any:
        return value
    raise ValueError(f"{key}: unsupported annotation {tp!r}")


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass `cls` from a (possibly partial) nested dict over its defaults; unknown keys are errors."""
    return merge(cls(), data, prefix)


def merge(cfg: T, data: dict[str, Any], prefix: str = "") -> T:
    """Return `cfg` with the (nested, partial) values of `data` applied on top."""
    hints = typing.get_type_hints(type(cfg))
    names = {f.name for f in fields(cfg)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(prefix + k for k in sorted(unknown))}; "
                         f"valid keys here: {', '.join(prefix + n for n in sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if is_dataclass(tp) and isinstance(value, dict):
            kwargs[name] = merge(getattr(cfg, name), value, prefix=prefix + name + ".")
        else:
            kwargs[name] = check_range(type(cfg), name, _coerce(value, tp, prefix + name), prefix + name)
    return replace(cfg, **kwargs)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """['a.b=3', 'c=[1,2]'] -> {'a': {'b': 3}, 'c': [1, 2]}; values are parsed as YAML scalars/lists
    (the same text reads the same in a YAML config file)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        if not key:
            raise ValueError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as e:
            raise ValueError(f"override {item!r}: cannot parse value: {e}") from None
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r} conflicts with an earlier override of {p}")
        node[parts[-1]] = value
    return out


def apply_overrides(cfg: T, items: list[str]) -> T:
    """Apply dotted `key=value` strings, type-checked against the dataclass annotations."""
    return merge(cfg, parse_overrides(items))


__all__ = [
    "FeatureEncoderConfig", "ContextConfig", "MaskingConfig", "QuantizerConfig", "ObjectiveConfig",
    "HeadConfig", "ModelConfig", "PRESETS", "preset", "to_dict", "from_dict", "merge", "ranged", "check_range",
    "parse_overrides", "apply_overrides", "SAMPLE_RATE",
]
