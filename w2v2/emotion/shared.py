"""Several classifiers that share parts, run as one: each shared part computed once per batch.

An ensemble trained by the default recipe from one init shares most of its work: its fine-tunes train
with the init's CNN frozen (so they hold the same CNN), and its linear probes keep the init's whole
backbone (so they hold the same backbone and differ only in their heads). Run one after another, the
members compute the same CNN features six times and the probes' backbone three times.

Design choices:
- what is shared is found by comparing the weights (`torch.equal`) and the configs of each part, not by
  trusting a checkpoint's `base`: members loaded from any source share where they are the same, and a
  member whose part differs in one value runs its own. So an ensemble's answers are the same as its
  members' run alone (the same operations on the same inputs; a test holds them to 1e-6);
- `SharedClassifiers` is one `nn.Module` returning every member's logits (b, k, num_labels): PyTorch runs
  it, and `python -m finetune export --format onnx` exports it as one graph, so onnxruntime shares
  the same parts;
- only members with the same CNN are put together: they cut, pad and batch windows alike
  (`w2v2.emotion.windows.padding_invariant` depends on the CNN alone).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch
from torch import nn

from w2v2.model import Wav2Vec2ForClassification, Wav2Vec2Model


def same_module(a: nn.Module, b: nn.Module) -> bool:
    """Whether two modules hold the same tensors (names, shapes, dtypes and values)."""
    if a is b:
        return True
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(  # a tensor both hold (`shared_parts`) needs no comparing
        sa[k].shape == sb[k].shape and sa[k].dtype == sb[k].dtype
        and (sa[k].data_ptr() == sb[k].data_ptr() or torch.equal(sa[k], sb[k])) for k in sa)


def same_cnn(a: Wav2Vec2ForClassification, b: Wav2Vec2ForClassification) -> bool:
    return (a.cfg.encoder == b.cfg.encoder and a.cfg.normalize_waveform == b.cfg.normalize_waveform
            and same_module(a.backbone.feature_encoder, b.backbone.feature_encoder))


def same_backbone(a: Wav2Vec2ForClassification, b: Wav2Vec2ForClassification) -> bool:
    """Same CNN and the same everything after it up to the head (projection, positions, Transformer)."""
    return same_cnn(a, b) and a.cfg.context == b.cfg.context and same_module(a.backbone, b.backbone)


def partition(items: Sequence[Wav2Vec2ForClassification], same) -> list[list[int]]:
    """Indices of `items` in groups of equals under `same` (first-come order, each group in order)."""
    groups: list[list[int]] = []
    for i, item in enumerate(items):
        home = next((g for g in groups if same(items[g[0]], item)), None)
        home.append(i) if home is not None else groups.append([i])
    return groups


def shared_parts(models: Iterable[Wav2Vec2ForClassification]) -> list[Wav2Vec2ForClassification]:
    """The models (inference only), each made to hold an earlier one's modules where its backbone or its CNN
    equals that one's. Taken from an iterator that loads them, each duplicate is let go as soon as the next
    loads, so memory holds the distinct parts (an ensemble's one CNN and its probes' one backbone)."""
    kept: list[Wav2Vec2ForClassification] = []
    for m in models:
        if (twin := next((k for k in kept if same_backbone(k, m)), None)) is not None:
            m.backbone = twin.backbone
        elif (twin := next((k for k in kept if same_cnn(k, m)), None)) is not None:
            m.backbone.feature_encoder = twin.backbone.feature_encoder
        kept.append(m)
    return kept


def cnn_groups(models: Sequence[Wav2Vec2ForClassification]) -> list[list[int]]:
    """The members (indices) that can run as one `SharedClassifiers`: those with the same CNN."""
    return partition(models, same_cnn)


def run_groups(models: Sequence[Wav2Vec2ForClassification], windows: Sequence[float]) -> list[list[int]]:
    """The members (indices) that predict as one: the same CNN and the same window (seconds, one per model),
    so that they cut a clip into the same windows. Prediction and the ONNX export group them alike."""
    return [[i for i in group if windows[i] == seconds] for group in cnn_groups(models)
            for seconds in dict.fromkeys(windows[i] for i in group)]


class SharedOutput(NamedTuple):
    logits: torch.Tensor  # (b, k, num_labels)


class SharedClassifiers(nn.Module):
    """Classifiers with one CNN (`same_cnn`), called as one classifier whose logits are (b, k, num_labels):
    the CNN runs once, each distinct backbone once, each head on its backbone's output. For inference
    (eval mode): no span masking, one forward."""

    def __init__(self, models: Sequence[Wav2Vec2ForClassification]) -> None:
        super().__init__()
        if not models or not all(same_cnn(models[0], m) for m in models[1:]):
            raise ValueError("SharedClassifiers takes classifiers with the same CNN (w2v2.emotion.shared.cnn_groups)")
        self.cfg = models[0].cfg  # the CNN's (windows, padding) and the labels' count, as one classifier has
        if any(m.cfg.head.num_labels != self.cfg.head.num_labels for m in models):
            raise ValueError("SharedClassifiers: the classifiers answer different numbers of labels")
        self.num_outputs = len(models)
        self.cnn: Wav2Vec2Model = models[0].backbone  # its `encode` (the CNN, and the waveform's normalisation)
        groups = partition(models, same_backbone)
        self.backbones = nn.ModuleList(models[g[0]].backbone for g in groups)
        self.heads = nn.ModuleList(m.head for m in models)
        # for each backbone, the members (output positions) whose heads read it, and whether any reads its
        # hidden states (a weighted layer sum)
        self.readers = groups
        self.hidden = [any(models[i].cfg.head.weighted_layer_sum for i in g) for g in groups]

    def forward(self, wave: torch.Tensor, padding_mask: torch.Tensor | None = None) -> SharedOutput:
        """wave (b, s), padding_mask (b, s) True = pad -> logits (b, k, num_labels), member by member."""
        features, frame_padding_mask = self.cnn.encode(wave, padding_mask)
        logits: list[torch.Tensor | None] = [None] * self.num_outputs
        for backbone, readers, hidden in zip(self.backbones, self.readers, self.hidden, strict=True):
            out = backbone.contextualize(features, frame_padding_mask,  # type: ignore[operator]
                                         output_hidden_states=hidden)
            for i in readers:
                logits[i] = self.heads[i](out.c, out.hidden_states, out.frame_padding_mask)[0]
        return SharedOutput(torch.stack(logits, dim=1))  # type: ignore[arg-type]
