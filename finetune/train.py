"""`python -m finetune train`: parse config -> data -> model -> loop (best by validation UAR) -> outputs."""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from finetune.config import FinetuneConfig
from finetune.data import AudioCache, augment, cached_waves, predict_probs
from finetune.ensemble import probs_frame, write_csv
from finetune.features import FeatureCache, WindowFeatures, plan_views
from finetune.metrics import classification_metrics
from finetune.model import build_classifier
from finetune.plots import plot_confusion, plot_curves
from finetune.state import clear_state, has_state, load_state, save_state
from w2v2.checkpoint import save_model
from w2v2.config import to_dict
from w2v2.data.audio import SAMPLE_RATE
from w2v2.data.batching import BucketBatchSampler, collate_waves
from w2v2.data.datasets import Dataset, Item, item_labels, labelled_test, no_speaker_split, speaker_split
from w2v2.data.labels import EMOTIONS
from w2v2.model import Wav2Vec2ForClassification
from w2v2.training import NonFiniteGuard, autocast, resolve_amp, resolve_device, warmup_decay


def class_weights(items: list[Item]) -> torch.Tensor:
    return label_weights(torch.tensor([it.label for it in items]))


def label_weights(labels: torch.Tensor) -> torch.Tensor:
    """Balanced loss weights (n / (classes * count)) of the emotions in `labels`; 0 for an absent one."""
    counts = torch.bincount(labels, minlength=len(EMOTIONS)).float()
    return torch.where(counts > 0, counts.sum() / (len(EMOTIONS) * counts.clamp(min=1)), torch.zeros(()))


def oversample(items: list[Item], seed: int) -> list[Item]:
    """Repeat clips of rarer classes until every class matches the largest (balance=sampler)."""
    rng = random.Random(seed)
    by_class = {c: [it for it in items if it.label == c] for c in range(len(EMOTIONS))}
    most = max(len(v) for v in by_class.values())
    out = []
    for group in by_class.values():
        if group:
            out += group + [rng.choice(group) for _ in range(most - len(group))]
    return out


def evaluate_items(model: Wav2Vec2ForClassification, items: list[Item], cache: AudioCache, window_seconds: float,
                   progress: bool = False, tta: tuple[float, ...] = ()) -> tuple[dict, torch.Tensor]:
    """Metrics and probabilities (n, 6) over labelled items (undecodable clips predicted as silence)."""
    probs = predict_probs(model, cached_waves(cache, len(items)), window_seconds, progress=progress, tta=tta)
    return classification_metrics(item_labels(items), probs.argmax(-1).tolist()), probs


def make_optimizer(model: Wav2Vec2ForClassification, cfg: FinetuneConfig, total_steps: int):
    groups = [{"params": list(model.head.parameters()), "lr": cfg.lr_head},
              {"params": list(model.backbone.parameters()), "lr": cfg.lr_backbone}]
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    warmup = max(1, int(cfg.warmup_fraction * total_steps))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, warmup_decay(warmup, total_steps))


@dataclass
class Fit:
    """What the epochs work on."""

    cfg: FinetuneConfig
    model: Wav2Vec2ForClassification
    items: list[Item]
    cache: AudioCache
    features: FeatureCache | None  # the frozen CNN's output, cached (None: the CNN runs every step)
    sampler: BucketBatchSampler
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    weights: torch.Tensor | None  # class weights of the loss (balance=loss), on the device
    rng: random.Random  # augmentation choices
    gen: torch.Generator  # crops, masks, noise
    device: torch.device
    amp: AbstractContextManager = field(default_factory=nullcontext)  # autocast of the training steps
    scaler: torch.amp.GradScaler | None = None  # fp16's loss scaling
    overall: tqdm | None = None  # a progress bar over several runs (an ensemble), advanced per step
    guard: NonFiniteGuard = field(default_factory=lambda: NonFiniteGuard(
        20, "lower lr_head/lr_backbone or check the data"))


def next_batch(fit: Fit, batch: list[int], crop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(input, padding mask, labels) of a batch of clip indices: cached CNN features (b, t, c) with a frame
    mask, or waveforms (b, s) with a sample mask, augmented and cropped; None when no clip decoded."""
    labels = item_labels(fit.items[i] for i in batch)
    if fit.features is not None:
        return fit.features.batch(batch, labels, fit.rng, fit.gen)
    loaded = [(fit.cache[i], y) for i, y in zip(batch, labels, strict=True)]
    pairs = [(augment(w, fit.cfg.augmentation, fit.rng, crop, fit.gen) if fit.cfg.augment else w, y)
             for w, y in loaded if w is not None]
    if not pairs:
        return None
    wave, padding_mask = collate_waves([w for w, _ in pairs], crop, fit.gen)
    return wave, padding_mask, torch.tensor([y for _, y in pairs])


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`t` on `device`; to a GPU through pinned memory, so that the copy overlaps the GPU's work."""
    return t.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else t.to(device)


def train_epoch(fit: Fit, step: int, epoch: int) -> tuple[float, int, float]:
    """One pass over the sampler: (mean loss, global step, seconds of audio the model was trained on)."""
    cfg, model = fit.cfg, fit.model
    model.train()
    total, n, seconds = 0.0, 0, 0.0
    crop = int(cfg.crop_seconds * SAMPLE_RATE)
    hop = model.cfg.encoder.hop  # samples per CNN frame
    bar = tqdm(fit.sampler, desc=f"epoch {epoch}", unit="batch", leave=False, disable=None)
    for batch in bar:
        if step == cfg.freeze_transformer_steps > 0:  # the head-only warm-up is over
            model.freeze(cfg.freeze_feature_encoder)
        inputs = next_batch(fit, batch, crop)
        if inputs is None:
            continue
        real = int((~inputs[1]).sum())  # counted before the copy: no device sync per step
        seconds += real * (hop if fit.features is not None else 1) / SAMPLE_RATE
        x, padding_mask, labels = (to_device(t, fit.device) for t in inputs)
        with fit.amp:
            forward = model.classify_features if fit.features is not None else model
            logits = forward(x, padding_mask, generator=fit.gen).logits
        loss = F.cross_entropy(logits.float(), labels, weight=fit.weights)
        if fit.guard.skip(bool(torch.isfinite(loss)), step):
            bar.write(f"step {step}: non-finite loss, batch skipped")
            continue
        fit.opt.zero_grad(set_to_none=True)
        if fit.scaler is not None:  # fp16: scaled loss, unscaled gradients before clipping
            fit.scaler.scale(loss).backward()
            fit.scaler.unscale_(fit.opt)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if fit.scaler is not None:
            fit.scaler.step(fit.opt)
            fit.scaler.update()
        else:
            fit.opt.step()
        fit.sched.step()
        step += 1
        total, n = total + loss.item(), n + 1
        bar.set_postfix(loss=f"{total / n:.3f}")
        if fit.overall is not None:
            fit.overall.update(1)
        if cfg.max_steps and step >= cfg.max_steps:
            break
    return total / max(n, 1), step, seconds


def split_train(data: Dataset, cfg: FinetuneConfig, val_speakers: list[str] | None) -> tuple[list[Item], list[Item]]:
    """(training, validation) items of `data.train`, printed with how they were split."""
    train_items, val_items = speaker_split(data.train, cfg.val_fraction, cfg.seed, val_speakers)
    if not val_items or not train_items:
        raise ValueError(f"{data.root}: {len(data.train)} labelled clips are too few to split into training and "
                         f"validation at val_fraction={cfg.val_fraction}")
    why_random = None if val_speakers else no_speaker_split(data.train)
    print(f"{len(train_items)} training / {len(val_items)} validation clips"
          + (f" ({why_random}: stratified random split, validation speakers may also be in training)" if why_random
             else f" ({len({it.speaker for it in val_items})} validation speakers, none in training)"))
    return train_items, val_items


def train(data: Dataset, cfg: FinetuneConfig, run: Path, val_speakers: list[str] | None = None,
          split: tuple[list[Item], list[Item]] | None = None, overall: tqdm | None = None,
          resume: bool = False) -> dict:
    """Fine-tune on `data`, write the run folder, return metrics.json's content.

    split: (training, validation) items chosen by the caller (a k-fold fold); default `speaker_split`.
    overall: a progress bar over several runs, advanced once per training step.
    resume: continue after the last epoch `run/resume/` holds (finetune.state), if it holds one."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    train_items, val_items = split or split_train(data, cfg, val_speakers)
    fit_items = oversample(train_items, cfg.seed) if cfg.balance == "sampler" else train_items
    device = resolve_device(cfg.device)
    amp = resolve_amp(cfg.amp, device)
    model = build_classifier(cfg).to(device)
    model.freeze(cfg.freeze_feature_encoder, transformer=cfg.freeze_transformer_steps > 0)
    cache, val_cache = AudioCache(fit_items), AudioCache(val_items)
    cache.prefetch(cfg.num_workers)
    rng, gen = random.Random(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    features, val_features = cached_features(model, cfg, cache, val_cache, amp, rng)
    lengths = [int(cfg.crop_seconds * SAMPLE_RATE)] * len(fit_items)  # crops: similar lengths
    sampler = BucketBatchSampler(lengths, batch_size=cfg.batch_size, seed=cfg.seed)
    steps_per_epoch = len(sampler)
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    opt, sched = make_optimizer(model, cfg, total_steps)
    autocast_ctx, scaler = autocast(amp, device)
    weights = class_weights(fit_items).to(device) if cfg.balance == "loss" else None
    fit = Fit(cfg, model, fit_items, cache, features, sampler, opt, sched, weights, rng, gen, device,
              autocast_ctx, scaler, overall)
    history, best, best_epoch, step, first, stop, before = [], -math.inf, 0, 0, 1, False, 0.0
    if resume and has_state(run):
        done = load_state(run, model, opt, sched, scaler, rng, gen, device)
        history, best, best_epoch, step, stop = (done[k] for k in ("history", "best", "best_epoch", "step", "stop"))
        first, before, fit.guard.total = done["epoch"] + 1, done["seconds"], done["skipped"]
        if step >= cfg.freeze_transformer_steps > 0:  # the head-only warm-up was over
            model.freeze(cfg.freeze_feature_encoder)
        print(f"resuming {run} after epoch {done['epoch']} (step {step}, best epoch {best_epoch})")
        if overall is not None:
            overall.update(step)
    start = time.perf_counter() - before
    (run / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))  # this run's epochs only
    for epoch in range(first, 0 if stop else cfg.epochs + 1):
        sampler.set_epoch(epoch)
        tick = time.perf_counter()
        loss, step, audio = train_epoch(fit, step, epoch)
        train_s, tick = time.perf_counter() - tick, time.perf_counter()
        kept = f"{run / 'best'} keeps epoch {best_epoch}" if best_epoch else "no model was saved"
        try:
            if not all(bool(p.isfinite().all()) for p in model.parameters()):
                raise ValueError("the weights became NaN/inf")
            if val_features is not None:
                probs = val_features.probs(model)
                metrics = classification_metrics(item_labels(val_items), probs.argmax(-1).tolist())
            else:
                metrics, _ = evaluate_items(model, val_items, val_cache, cfg.window_seconds)
        except ValueError as e:  # a diverged model: never saved as best/
            raise ValueError(f"epoch {epoch}: {e}; lower lr_head/lr_backbone ({kept})") from None
        val_s = time.perf_counter() - tick
        history.append({"epoch": epoch, "step": step, "train_loss": loss, "val_uar": metrics["uar"],
                        "val_accuracy": metrics["accuracy"], "val_macro_f1": metrics["macro_f1"],
                        "train_seconds": train_s, "audio_seconds": audio, "val_seconds": val_s})
        with open(run / "history.jsonl", "a") as f:
            f.write(json.dumps(history[-1]) + "\n")
        better = metrics["uar"] > best
        say = overall.write if overall is not None else print
        say(f"epoch {epoch}: loss {loss:.3f}  val UAR {metrics['uar']:.3f}  acc {metrics['accuracy']:.3f}  "
            f"F1 {metrics['macro_f1']:.3f}  {audio / train_s:.0f} audio-s/s ({train_s:.1f} s training, "
            f"{val_s:.1f} s validation){'  (best, saved)' if better else ''}")
        if better:
            best, best_epoch = metrics["uar"], epoch
            save_model(model, run / "best", extra={"labels": list(EMOTIONS), "finetune": to_dict(cfg),
                                                   "epoch": epoch, "val_uar": best})
        stop = bool(epoch - best_epoch >= cfg.patience or (cfg.max_steps and step >= cfg.max_steps))
        save_state(run, model, opt, sched, scaler, rng, gen, device,
                   {"epoch": epoch, "step": step, "best": best, "best_epoch": best_epoch, "history": history,
                    "stop": stop, "seconds": time.perf_counter() - start, "skipped": fit.guard.total})
        if stop:
            say(f"stopping after epoch {epoch} (best epoch {best_epoch})")
            break
    if overall is not None:  # early stopping: the steps this run will not take
        overall.update(max(0, total_steps - step))
    plot_curves(history, run / "curves.png")
    result = finish(run, data, val_items, val_cache, cfg, best_epoch, time.perf_counter() - start)
    clear_state(run)  # finished: nothing left to resume
    return result


def cached_features(model: Wav2Vec2ForClassification, cfg: FinetuneConfig, cache: AudioCache, val_cache: AudioCache,
                    amp: str, rng: random.Random) -> tuple[FeatureCache | None, WindowFeatures | None]:
    """The frozen CNN's features of the training clips (in views) and of the validation windows, where
    `plan_views` finds them worth it and within memory; (None, None) otherwise."""
    dtype = torch.bfloat16 if amp == "bf16" else torch.float32
    views, how = plan_views(cfg, model, [w.numel() for w in cached_waves(cache, len(cache.items))], dtype)
    if cfg.freeze_feature_encoder:
        print(f"feature cache: {how}")
    if not views:
        return None, None
    train_features = FeatureCache(model, cache, cfg, views, dtype, rng)
    val_waves = cached_waves(val_cache, len(val_cache.items))
    return train_features, WindowFeatures(model, val_waves, cfg.window_seconds, cfg.batch_size)


def finish(run: Path, data: Dataset, val_items: list[Item], val_cache: AudioCache, cfg: FinetuneConfig,
           best_epoch: int, seconds: float) -> dict:
    """Reload the best checkpoint; metrics.json, confusion matrices, val_probs.csv and, for competitions,
    submission.csv and test_probs.csv (validation and test predicted with `cfg.tta`, on `cfg.device`)."""
    from w2v2.checkpoint import load_model

    model = load_model(run / "best").to(resolve_device(cfg.device)).eval()
    assert isinstance(model, Wav2Vec2ForClassification)  # what train() and train_probe() save
    val_metrics, val_probs = evaluate_items(model, val_items, val_cache, cfg.window_seconds, progress=True,
                                            tta=cfg.tta)
    write_csv(probs_frame(val_items, val_probs, labelled=True), run / "val_probs.csv")
    result = {"validation": val_metrics, "best_epoch": best_epoch, "train_seconds": seconds,
              "layout": data.layout, "data": str(data.root)}
    plot_confusion(val_metrics["confusion_matrix"], list(EMOTIONS), run / "confusion_matrix.png",
                   f"validation (UAR {val_metrics['uar']:.3f})")
    if data.test:
        waves = cached_waves(AudioCache(data.test), len(data.test))
        result |= write_test_outputs(run, data, predict_probs(model, waves, cfg.window_seconds, progress=True,
                                                              tta=cfg.tta))
    (run / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


def write_test_outputs(folder: Path, data: Dataset, probs: torch.Tensor) -> dict:
    """submission.csv (the most probable class) and test_probs.csv of `data.test`'s probabilities (n, 6);
    returns {"submission": path} and, where test_labels.csv labels clips, {"test": their metrics}."""
    preds = probs.argmax(-1).tolist()
    write_submission(folder / "submission.csv", data, preds)
    write_csv(probs_frame(data.test, probs), folder / "test_probs.csv")
    result: dict = {"submission": str(folder / "submission.csv")}
    if labelled := labelled_test(data):
        pred_of = dict(zip((it.id for it in data.test), preds, strict=True))  # ids are unique (datasets.py)
        result["test"] = classification_metrics(item_labels(labelled), [pred_of[it.id] for it in labelled])
        plot_confusion(result["test"]["confusion_matrix"], list(EMOTIONS), folder / "confusion_matrix_test.png",
                       f"test (UAR {result['test']['uar']:.3f})")
    return result


def write_submission(path: Path, data: Dataset, preds: list[int]) -> None:
    """sample_submission's ids, order and columns, with our labels."""
    sub = data.submission.copy() if data.submission is not None else pd.DataFrame({"id": [t.id for t in data.test]})
    label_col = next((c for c in sub.columns if c.strip().lower() == "label"), None)
    sub[label_col or (sub.columns[-1] if len(sub.columns) > 1 else "label")] = preds
    write_csv(sub, path)
