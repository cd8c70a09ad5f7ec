"""The frozen-CNN feature cache: a frozen feature encoder runs once per clip (and augmentation view),
not once per clip in every epoch.

Design choices:
- what is cached is the CNN's output (`Wav2Vec2Model.encode`, 50 frames a second); everything after it
  (projection, masking, Transformer, head) trains exactly as on waveforms (`classify_features`);
- waveform augmentation stays: each training clip is cached as `cache_views` views, the first as
  recorded and the others through `finetune.data.augment` (speed, gain, noise) of the whole clip, drawn
  once from the run's seed; every epoch takes one view of each clip at random;
- crops are taken in frames (`crop_seconds` worth). The CNN has no padding and the layer-norm CNN
  (`small`, `large`) normalises each frame alone, so a frame crop is the CNN of a waveform crop on the
  20 ms grid, but for the per-utterance waveform normalisation (the clip's statistics, not the crop's);
- storage is fp32, or bf16 when the training steps run in bf16 (the uncached CNN then computes in bf16
  too); the size is estimated before any work: above `feature_cache_gb` fewer views are kept, and if
  not even one fits, the CNN runs per step as without the cache (said in one line);
- validation clips are cached too (one view, in the windows prediction uses), so the per-epoch
  validation is the model after the CNN only.
"""

from __future__ import annotations

import random

import torch

from finetune.config import FinetuneConfig
from finetune.data import augment
from w2v2.data.audio import MIN_SAMPLES, SAMPLE_RATE
from w2v2.data.batching import collate_waves
from w2v2.emotion.windows import AudioCache, checked_softmax, padding_invariant, window_batches, windows
from w2v2.model import Wav2Vec2ForClassification
from w2v2.training.progress import progress_bar


def cache_bytes(model: Wav2Vec2ForClassification, num_samples: list[int], views: int, dtype: torch.dtype) -> int:
    """Bytes of the CNN features of clips of `num_samples` samples, `views` times (speed views ~ as long)."""
    frames = sum(model.backbone.feature_encoder.num_frames(max(n, MIN_SAMPLES)) for n in num_samples)
    return frames * model.cfg.encoder.conv_dim[-1] * views * torch.finfo(dtype).bits // 8


def plan_views(cfg: FinetuneConfig, model: Wav2Vec2ForClassification, num_samples: list[int], dtype: torch.dtype
               ) -> tuple[int, str]:
    """(views to cache, 0 = no cache; why) for training clips of `num_samples` samples."""
    if not cfg.freeze_feature_encoder or not cfg.feature_cache:
        return 0, "off"
    wanted = cfg.cache_views if cfg.augment else 1
    limit = cfg.feature_cache_gb * 2**30
    per_view = cache_bytes(model, num_samples, 1, dtype)
    views = min(wanted, int(limit // max(per_view, 1)))
    size = f"{per_view * max(views, 1) / 2**30:.2f} GB"
    if views == 0:
        return 0, f"off: one view would take {size}, over feature_cache_gb={cfg.feature_cache_gb}"
    fewer = f" (of {wanted}: feature_cache_gb={cfg.feature_cache_gb})" if views < wanted else ""
    return views, f"{views} view(s){fewer}, {size}"


@torch.no_grad()
def encode_all(model: Wav2Vec2ForClassification, waves: list[torch.Tensor], dtype: torch.dtype, batch_size: int = 8,
               progress: str | None = None) -> list[torch.Tensor]:
    """The CNN features (t, c) of each wave (s,), computed in fp32 on the model's device, stored on the
    CPU in `dtype`. Batches hold clips of similar length; for a CNN whose output depends on padding
    (group norm), only equal lengths (`window_batches`)."""
    device = next(model.parameters()).device
    backbone = model.backbone.eval()
    out: list[torch.Tensor | None] = [None] * len(waves)
    batches = window_batches([max(w.numel(), MIN_SAMPLES) for w in waves], batch_size, padding_invariant(model))
    for batch in progress_bar(batches, desc=progress, unit="batch", disable=progress is None or None, leave=False):
        wave, padding_mask = collate_waves([waves[i] for i in batch])  # short clips zero-extended, as in training
        features, _ = backbone.encode(wave.to(device), padding_mask.to(device))
        frames = backbone.frame_lengths((~padding_mask).sum(-1))
        for row, i in enumerate(batch):
            out[i] = features[row, :int(frames[row])].to("cpu", dtype)
    return out  # type: ignore[return-value]


class FeatureCache:
    """CNN features of training clips by index: `views[i]` is a list of (t, c) tensors, None for a clip
    that cannot be decoded."""

    def __init__(self, model: Wav2Vec2ForClassification, audio: AudioCache, cfg: FinetuneConfig, views: int,
                 dtype: torch.dtype, rng: random.Random) -> None:
        waves, index = [], []
        for i in range(len(audio.items)):
            if (wave := audio[i]) is None:
                continue
            for v in range(views):  # view 0 as recorded, the others augmented once
                waves.append(wave if v == 0 else augment(wave, cfg.augmentation, rng))
                index.append(i)
        feats = encode_all(model, waves, dtype, cfg.batch_size, progress=f"CNN features ({views} view(s))")
        self.views: list[list[torch.Tensor] | None] = [None] * len(audio.items)
        for i, f in zip(index, feats, strict=True):
            self.views[i] = (self.views[i] or []) + [f]
        self.crop_frames = model.backbone.feature_encoder.num_frames(int(cfg.crop_seconds * SAMPLE_RATE))

    def batch(self, indices: list[int], labels: list[int], rng: random.Random, generator: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(features (b, t, c), frame_padding_mask (b, t), labels (b,)) of one random view and crop of each
        decodable clip; None when none is."""
        picked = [(views, y) for i, y in zip(indices, labels, strict=True) if (views := self.views[i]) is not None]
        if not picked:
            return None
        crops = [crop_frames(views[rng.randrange(len(views))] if len(views) > 1 else views[0], self.crop_frames,
                             generator) for views, _ in picked]
        return (*pad_frames(crops), torch.tensor([y for _, y in picked]))


def crop_frames(features: torch.Tensor, frames: int, generator: torch.Generator) -> torch.Tensor:
    """A random crop of `frames` frames of features (t, c), or all of them if fewer."""
    if features.shape[0] <= frames:
        return features
    start = int(torch.randint(0, features.shape[0] - frames + 1, (1,), generator=generator))
    return features[start:start + frames]


def pad_frames(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded batch (b, t, c) of (t_i, c) tensors and its frame padding mask (b, t), True = padded."""
    t = max(f.shape[0] for f in features)
    batch = features[0].new_zeros(len(features), t, features[0].shape[1])
    mask = torch.ones(len(features), t, dtype=torch.bool)
    for row, f in enumerate(features):
        batch[row, :f.shape[0]] = f
        mask[row, :f.shape[0]] = False
    return batch, mask


class WindowFeatures:
    """CNN features of every prediction window of some clips (validation), for `probs`: what
    `w2v2.emotion.windows.predict_probs` computes, with the CNN run once."""

    def __init__(self, model: Wav2Vec2ForClassification, waves: list[torch.Tensor], window_seconds: float,
                 batch_size: int) -> None:
        per_clip = [windows(w, int(window_seconds * SAMPLE_RATE)) for w in waves]
        self.counts = [len(segs) for segs in per_clip]
        self.feats = encode_all(model, [s for segs in per_clip for s in segs], torch.float32, batch_size,
                                progress="CNN features (validation)")
        self.batch_size, self.invariant = batch_size, padding_invariant(model)

    @torch.no_grad()
    def probs(self, model: Wav2Vec2ForClassification) -> torch.Tensor:
        """Class probabilities (n, num_labels): each window's softmax, averaged over the clip's windows."""
        device = next(model.parameters()).device
        model.eval()
        out = torch.zeros(len(self.feats), model.cfg.head.num_labels)
        for batch in window_batches([f.shape[0] for f in self.feats], self.batch_size, self.invariant):
            features, mask = pad_frames([self.feats[i] for i in batch])
            out[batch] = checked_softmax(model.classify_features(features.to(device), mask.to(device)).logits)
        return torch.stack([p.mean(0) for p in out.split(self.counts)])
