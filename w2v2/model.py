"""wav2vec 2.0 models: the shared backbone, the pretraining model and the emotion classifier.

Design choices (where we differ from fairseq/HF):
- Padding is a (b, s) boolean `padding_mask`, True = padded sample (fairseq convention); HF's
  attention_mask (1 = real sample) is translated in convert.py only.
- Forward passes return NamedTuples; losses follow the paper's code (sums over masked frames).
- Mask and negatives can be passed in (for parity tests against HF) or are sampled with an
  explicit torch.Generator.
- Input normalisation (HF feature extractor's do_normalize) lives in the model, so that a
  checkpoint carries it and every caller gets the same preprocessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple, overload

import torch
from torch import nn

from w2v2.config import ModelConfig
from w2v2.context import ContextNetwork
from w2v2.dropout import Dropout
from w2v2.feature_encoder import FeatureEncoder, FeatureProjection
from w2v2.heads import ClassificationHead
from w2v2.losses import contrastive_logits, objective
from w2v2.masking import compute_mask, sample_negatives
from w2v2.quantizer import GumbelQuantizer


class BackboneOutput(NamedTuple):
    c: torch.Tensor  # (b, t, d) context representations
    z: torch.Tensor  # (b, t, c) layer-normalised CNN features (the quantizer's input)
    frame_padding_mask: torch.Tensor | None  # (b, t) True = padded frame
    hidden_states: tuple[torch.Tensor, ...] | None  # layers+1 of (b, t, d)
    features: torch.Tensor  # (b, t, c) raw CNN output (the feature penalty's input)


class PretrainOutput(NamedTuple):
    loss: torch.Tensor  # contrastive + alpha * diversity + feature penalty, summed over masked frames
    contrastive_loss: torch.Tensor
    diversity_loss: torch.Tensor
    feature_penalty: torch.Tensor
    num_masked: torch.Tensor
    accuracy: torch.Tensor  # fraction of masked frames whose true target scores highest
    perplexity: torch.Tensor
    temperature: torch.Tensor


class ClassifierOutput(NamedTuple):
    logits: torch.Tensor  # (b, num_labels)
    pooled: torch.Tensor  # (b, projector_dim) or (b, 2*projector_dim) for statistics pooling


def backbone_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone's tensors in a pretraining model's or classifier's state_dict, under a bare backbone's
    keys (`backbone.context.…` -> `context.…`); empty for a bare backbone's own state_dict."""
    return {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}


def normalize_waveform(wave: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
    """Zero mean, unit variance over each utterance's real samples; padding stays 0. wave (b, s)."""
    keep = torch.ones_like(wave) if padding_mask is None else (~padding_mask).to(wave.dtype)
    n = keep.sum(-1, keepdim=True).clamp(min=1)
    mean = (wave * keep).sum(-1, keepdim=True) / n
    var = (((wave - mean) * keep) ** 2).sum(-1, keepdim=True) / n
    return (wave - mean) / torch.sqrt(var + 1e-7) * keep


class Wav2Vec2Model(nn.Module):
    """Feature encoder + projection + (optional) span masking + context network."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.feature_encoder = FeatureEncoder(cfg.encoder, cfg.gradient_checkpointing)
        self.feature_projection = FeatureProjection(cfg.encoder.conv_dim[-1], cfg.context.dim,
                                                    cfg.context.input_dropout, cfg.context.layer_norm_eps)
        self.mask_emb = nn.Parameter(torch.rand(cfg.context.dim))
        self.context = ContextNetwork(cfg.context, cfg.gradient_checkpointing)

    def frame_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        return self.feature_encoder.frame_lengths(num_samples)

    def frame_padding_mask(self, wave: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor | None:
        """(b, t) True = padded frame, from the (b, s) sample padding mask (right padding)."""
        if padding_mask is None:
            return None
        lengths = self.frame_lengths((~padding_mask).sum(-1))
        if not torch.compiler.is_compiling() and bool((lengths < 1).any()):
            bad = torch.nonzero(lengths < 1).flatten().tolist()
            raise ValueError(f"batch items {bad} have fewer than {self.feature_encoder.receptive_field} "
                             "real samples: pad short clips before batching")
        t = self.feature_encoder.num_frames(wave.shape[-1])
        return torch.arange(t, device=wave.device)[None, :] >= lengths[:, None]

    def encode(self, wave: torch.Tensor, padding_mask: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The CNN's part: (features (b, t, c), frame_padding_mask (b, t) or None) of wave (b, s). A frozen
        CNN's features can be computed once and passed to `contextualize` (fine-tuning's feature cache)."""
        if wave.numel() == 0:
            raise ValueError("empty input: no audio samples")
        if self.cfg.normalize_waveform:
            wave = normalize_waveform(wave, padding_mask)
        return self.feature_encoder(wave), self.frame_padding_mask(wave, padding_mask)

    def contextualize(self, features: torch.Tensor, frame_padding_mask: torch.Tensor | None = None,
                      mask: torch.Tensor | None = None, output_hidden_states: bool = False,
                      generator: torch.Generator | None = None) -> BackboneOutput:
        """Everything after the CNN: features (b, t, c); frame_padding_mask and mask (b, t), mask True =
        replace by mask_emb; `generator` draws LayerDrop's skipped layers."""
        x, z = self.feature_projection(features)
        if mask is not None:
            x = torch.where(mask[..., None], self.mask_emb.to(x.dtype), x)
        c, hidden = self.context(x, frame_padding_mask, output_hidden_states, generator)
        return BackboneOutput(c, z, frame_padding_mask, hidden, features)

    def forward(self, wave: torch.Tensor, padding_mask: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, output_hidden_states: bool = False,
                generator: torch.Generator | None = None) -> BackboneOutput:
        """wave (b, s); padding_mask (b, s) True = pad; mask (b, t) True = replace by mask_emb."""
        return self.contextualize(*self.encode(wave, padding_mask), mask, output_hidden_states, generator)


def _sample_mask(model: Wav2Vec2Model, wave: torch.Tensor, padding_mask: torch.Tensor | None,
                 generator: torch.Generator | None) -> torch.Tensor:
    m = model.cfg.masking
    t = model.feature_encoder.num_frames(wave.shape[-1])
    return compute_mask((wave.shape[0], t), m.mask_prob, m.mask_length, m.min_masks, generator,
                        model.frame_padding_mask(wave, padding_mask), device=wave.device)


class Wav2Vec2ForPreTraining(nn.Module):
    """Backbone + quantizer + projections; forward returns the self-supervised objective."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = Wav2Vec2Model(cfg)
        self.quantizer = GumbelQuantizer(cfg.quantizer, cfg.encoder.conv_dim[-1])
        self.project_c = nn.Linear(cfg.context.dim, cfg.objective.proj_dim)
        self.project_q = nn.Linear(cfg.quantizer.codevector_dim, cfg.objective.proj_dim)
        self.features_dropout = Dropout(cfg.objective.features_dropout)

    def set_step(self, step: int) -> None:
        """Anneal the Gumbel temperature to its value at update `step`."""
        self.quantizer.set_step(step)

    def draw_targets(self, wave: torch.Tensor, padding_mask: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Span mask (b, t) and negative time indices (b, t, k), drawn eagerly (their number of spans is
        data dependent, so a compiled forward takes them as inputs)."""
        mask = _sample_mask(self.backbone, wave, padding_mask, generator)
        return mask, sample_negatives(mask, self.cfg.objective.num_negatives, generator)

    def forward(self, wave: torch.Tensor, padding_mask: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, negative_indices: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> PretrainOutput:
        """wave (b, s); mask (b, t); negative_indices (b, t, k) time indices in the same utterance."""
        if mask is None:
            mask = _sample_mask(self.backbone, wave, padding_mask, generator)
        if negative_indices is None:
            negative_indices = sample_negatives(mask, self.cfg.objective.num_negatives, generator)
        out = self.backbone(wave, padding_mask, mask, generator=generator)
        qo = self.quantizer(self.features_dropout(out.z), mask)
        c = self.project_c(out.c)
        q = self.project_q(qo.q)
        logits = contrastive_logits(c, q, negative_indices, self.cfg.objective.logit_temp, qo.codes)
        qc = self.cfg.quantizer
        o = objective(logits, mask, qo.perplexity, qc.groups * qc.codewords, out.features, self.cfg.objective)
        return PretrainOutput(o.loss, o.contrastive, o.diversity, o.feature_penalty, o.num_masked,
                              o.correct / o.num_masked.clamp(min=1), qo.perplexity,
                              self.quantizer.temperature.clone())


class Wav2Vec2ForClassification(nn.Module):
    """Backbone + utterance classification head (emotion recognition)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = Wav2Vec2Model(cfg)
        self.head = ClassificationHead(cfg.head, cfg.context.dim, cfg.context.layers + 1)

    def freeze(self, feature_encoder: bool, transformer: bool = False) -> None:
        """Train only some parts: the CNN feature encoder and/or the rest of the backbone (projection,
        positional convolution, Transformer) stop taking gradients; the head always trains."""
        cnn = {id(p) for p in self.backbone.feature_encoder.parameters()}
        for p in self.backbone.parameters():
            p.requires_grad_(not (feature_encoder if id(p) in cnn else transformer))

    def load_backbone_from(self, source: nn.Module | dict[str, torch.Tensor]) -> None:
        """Copy backbone weights from a pretraining model / classifier or its state_dict."""
        state = source.state_dict() if isinstance(source, nn.Module) else source
        self.backbone.load_state_dict(backbone_state(state) or state)  # a bare backbone's keys carry no prefix

    def forward(self, wave: torch.Tensor, padding_mask: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> ClassifierOutput:
        """wave (b, s); padding_mask (b, s) True = pad. Span masking (SpecAugment) in training only:
        sampled here unless `mask` (b, t) is given (e.g. by a compiled training step)."""
        return self.classify_features(*self.backbone.encode(wave, padding_mask), mask, generator)

    def classify_features(self, features: torch.Tensor, frame_padding_mask: torch.Tensor | None = None,
                          mask: torch.Tensor | None = None, generator: torch.Generator | None = None
                          ) -> ClassifierOutput:
        """The classifier from CNN features (b, t, c) on (`Wav2Vec2Model.encode`'s output): what `forward`
        does after the CNN, the same span masking included."""
        if mask is None and self.training and self.cfg.masking.mask_prob > 0:
            m = self.cfg.masking
            mask = compute_mask((features.shape[0], features.shape[1]), m.mask_prob, m.mask_length, m.min_masks,
                                generator, frame_padding_mask, device=features.device)
        out = self.backbone.contextualize(features, frame_padding_mask, mask,
                                          output_hidden_states=self.cfg.head.weighted_layer_sum,
                                          generator=generator)
        logits, pooled = self.head(out.c, out.hidden_states, out.frame_padding_mask)
        return ClassifierOutput(logits, pooled)


ModelKind = Literal["pretrain", "classifier", "backbone"]
MODELS: dict[str, type[nn.Module]] = {
    "pretrain": Wav2Vec2ForPreTraining, "classifier": Wav2Vec2ForClassification, "backbone": Wav2Vec2Model,
}


@overload
def build_model(cfg: ModelConfig, kind: Literal["pretrain"] = ...) -> Wav2Vec2ForPreTraining: ...
@overload
def build_model(cfg: ModelConfig, kind: Literal["classifier"]) -> Wav2Vec2ForClassification: ...
@overload
def build_model(cfg: ModelConfig, kind: Literal["backbone"]) -> Wav2Vec2Model: ...
@overload
def build_model(cfg: ModelConfig, kind: str) -> nn.Module: ...  # a kind read from a checkpoint, checked here


def build_model(cfg: ModelConfig, kind: str = "pretrain") -> nn.Module:
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {sorted(MODELS)}")
    return MODELS[kind](cfg)


def unwrap(model: nn.Module) -> nn.Module:
    """The w2v2 model inside a DistributedDataParallel and/or torch.compile wrapper."""
    model = getattr(model, "module", model)  # DDP
    return getattr(model, "_orig_mod", model)  # torch.compile


def model_kind(model: nn.Module) -> str:
    for kind, cls in MODELS.items():
        if isinstance(model, cls):
            return kind
    raise TypeError(f"not a w2v2 model: {type(model).__name__}")
