"""The frozen-CNN feature cache (finetune/features.py): training on cached features is training on
waveforms, validation on cached windows is prediction, and the cache stays within its memory bound."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch

from finetune.config import resolve_run
from finetune.features import FeatureCache, WindowFeatures, cache_bytes, plan_views
from finetune.model import build_classifier
from finetune.train import Fit, class_weights, make_optimizer, train_epoch
from w2v2.data.batching import BucketBatchSampler
from w2v2.data.datasets import load_dataset
from w2v2.emotion.windows import AudioCache, cached_waves, predict_probs

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# the small architecture (layer-norm CNN) from random weights, crops longer than every clip, no augmentation
CONFIG = ["init=scratch", "preset=small", "augment=false", "crop_seconds=8", "batch_size=8", "amp=none",
          "model.context.layerdrop=0"]


def one_step(items: list, cached: bool) -> tuple[float, torch.Tensor]:
    """(loss, head weights after one update) of a seeded step, on cached features or on waveforms."""
    cfg = resolve_run(None, CONFIG)
    random.seed(0)
    model = build_classifier(cfg)
    model.freeze(True)
    audio, rng, gen = AudioCache(items), random.Random(0), torch.Generator().manual_seed(0)
    features = FeatureCache(model, audio, cfg, 1, torch.float32, rng) if cached else None
    opt, sched = make_optimizer(model, cfg, 1)
    torch.manual_seed(0)
    fit = Fit(cfg, model, items, audio, features, BucketBatchSampler([1] * len(items), batch_size=8, seed=0),
              opt, sched, class_weights(items), rng, gen, torch.device("cpu"))
    loss, step, _ = train_epoch(fit, 0, 1)
    assert step == 1
    return loss, torch.cat([p.detach().flatten() for p in model.head.parameters()])


@pytest.mark.slow
def test_training_on_cached_features_equals_training_on_waveforms(synthetic_corpus) -> None:
    items = load_dataset(synthetic_corpus(clips=16, speakers=4, seed=1)).train[:8]
    (loss_wave, head_wave), (loss_cached, head_cached) = one_step(items, False), one_step(items, True)
    assert loss_cached == pytest.approx(loss_wave, abs=1e-5)
    assert torch.allclose(head_cached, head_wave, atol=1e-5)
    assert not torch.allclose(head_wave, one_step(items[1:], False)[1], atol=1e-5)  # the check can fail


def test_validation_on_cached_windows_equals_prediction_on_waveforms(synthetic_corpus) -> None:
    cfg = resolve_run(None, [*CONFIG, "window_seconds=1.0"])  # several windows per clip
    model = build_classifier(cfg).eval()
    items = load_dataset(synthetic_corpus(clips=16, speakers=4, seed=1)).train[:6]
    waves = cached_waves(AudioCache(items), len(items))
    cached = WindowFeatures(model, waves, 1.0, batch_size=4).probs(model)
    assert torch.allclose(cached, predict_probs(model, waves, 1.0), atol=1e-5)


def test_augmented_views_differ_and_the_cache_respects_its_memory_bound(synthetic_corpus) -> None:
    cfg = resolve_run(None, ["init=scratch", "preset=small", "freeze_feature_encoder=true"])
    model = build_classifier(cfg)
    items = load_dataset(synthetic_corpus(clips=16, speakers=4, seed=1)).train[:4]
    audio = AudioCache(items)
    lengths = [w.numel() for w in cached_waves(audio, len(items))]
    assert plan_views(cfg, model, lengths, torch.float32)[0] == 3
    assert plan_views(replace(cfg, augment=False), model, lengths, torch.float32)[0] == 1
    assert plan_views(replace(cfg, freeze_feature_encoder=False), model, lengths, torch.float32) == (0, "off")
    gb = cache_bytes(model, lengths, 1, torch.float32) / 2**30
    assert gb == pytest.approx(sum(n // 320 for n in lengths) * 128 * 4 / 2**30, rel=0.01)  # 50 frames/s, 128 ch
    views, how = plan_views(replace(cfg, feature_cache_gb=1.5 * gb), model, lengths, torch.float32)
    assert views == 1 and "of 3" in how
    assert plan_views(replace(cfg, feature_cache_gb=1e-9), model, lengths, torch.float32)[0] == 0
    cache = FeatureCache(model, audio, cfg, 3, torch.bfloat16, random.Random(0))
    for views in cache.views:
        assert len(views) == 3 and views[0].dtype == torch.bfloat16
        assert not torch.equal(views[0], views[1])  # augmented
    batch, mask, labels = cache.batch([0, 1, 2], [items[i].label for i in range(3)], random.Random(0),
                                      torch.Generator().manual_seed(0))
    frames = model.backbone.feature_encoder.num_frames(int(cfg.crop_seconds * 16000))
    assert batch.shape[:2] == mask.shape and batch.shape[1] <= frames and labels.tolist() == [
        items[i].label for i in range(3)]
