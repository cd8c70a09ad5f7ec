"""`python -m finetune train`: parse config -> data -> model -> loop (best by validation UAR) -> outputs."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from finetune.config import FinetuneConfig
from finetune.data import augment
from finetune.features import FeatureCache, WindowFeatures, plan_views
from finetune.metrics import classification_metrics, label_weights
from finetune.model import build_classifier
from finetune.outputs import evaluate_items, finish, start_run
from finetune.plots import plot_curves
from finetune.state import clear_state, has_state, load_state, save_state
from w2v2.checkpoint import save_model
from w2v2.config import to_dict
from w2v2.data.audio import SAMPLE_RATE
from w2v2.data.batching import BucketBatchSampler, collate_waves
from w2v2.data.datasets import Dataset, Item, item_labels, no_speaker_split, speaker_split
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.travel import class_masks
from w2v2.emotion.windows import AudioCache, cached_waves
from w2v2.model import Wav2Vec2ForClassification
from w2v2.training import NonFiniteGuard, autocast, resolve_amp, resolve_device, warmup_decay
from w2v2.training.progress import progress_bar


def plural(n: int, noun: str) -> str:
    """'1 validation speaker', '2 validation speakers'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def class_weights(items: list[Item]) -> torch.Tensor:
    return label_weights(torch.tensor([it.label for it in items]))


def corpus_targets(items: list[Item]) -> tuple[list[int], torch.Tensor | None]:
    """(training targets, table of class masks). Where the items name several corpora and one lacks classes the
    others have (a CSV's `corpus` column), an absent class is unknown there, never a negative: target = label +
    6 * row of the table, and the loss sees only that row's classes. Otherwise the labels and None."""
    labels = item_labels(items)
    table, rows = torch.unique(class_masks(labels, [it.corpus or "" for it in items]), dim=0, return_inverse=True)
    if len(table) < 2:
        return labels, None
    return [y + len(EMOTIONS) * int(r) for y, r in zip(labels, rows, strict=True)], table


def partial_label_note(items: list[Item], targets: list[int], table: torch.Tensor) -> str:
    """What `corpus_targets` gave (`targets`, `table`), in words for the log."""
    row = {it.corpus or "(none)": t // len(EMOTIONS) for it, t in zip(items, targets, strict=True)}
    return "partial label sets: " + "; ".join(
        f"{c} trains on {', '.join(EMOTIONS[k] for k in table[r].nonzero().flatten().tolist())}"
        for c, r in sorted(row.items()))


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
    overall: Any = None  # a progress bar over several runs (an ensemble), advanced per step
    guard: NonFiniteGuard = field(default_factory=lambda: NonFiniteGuard(
        20, "lower lr_head/lr_backbone or check the data"))
    targets: list[int] = field(default_factory=list)  # per item: its label, + 6 * its class-mask row (corpus_targets)
    class_table: torch.Tensor | None = None  # (rows, 6) bool on the device: the classes each corpus trains on


def next_batch(fit: Fit, batch: list[int], crop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(input, padding mask, labels) of a batch of clip indices: cached CNN features (b, t, c) with a frame
    mask, or waveforms (b, s) with a sample mask, augmented and cropped; None when no clip decoded."""
    labels = [fit.targets[i] for i in batch] if fit.targets else item_labels(fit.items[i] for i in batch)
    if fit.features is not None:
        return fit.features.batch(batch, labels, fit.rng, fit.gen)
    loaded = [(fit.cache[i], y) for i, y in zip(batch, labels, strict=True)]
    pairs = [(augment(w, fit.cfg.augmentation, fit.rng, crop, fit.gen) if fit.cfg.augment else w, y)
             for w, y in loaded if w is not None]
    if not pairs:
        return None
    wave, padding_mask = collate_waves([w for w, _ in pairs], crop, fit.gen)
    return wave, padding_mask, torch.tensor([y for _, y in pairs])


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None,
                         table: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy; with a class-mask table (`corpus_targets`), each row's softmax over its corpus's classes."""
    if table is None:
        return F.cross_entropy(logits, targets, weight=weights)
    n = len(EMOTIONS)
    logits = logits.masked_fill(~table[targets // n], float("-inf"))
    return F.cross_entropy(logits, targets % n, weight=weights)


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
    bar = progress_bar(fit.sampler, desc=f"epoch {epoch}", unit="batch", leave=False, disable=None)
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
        loss = masked_cross_entropy(logits.float(), labels, fit.weights, fit.class_table)
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
    print(f"seed {cfg.seed}: {len(train_items)} training / {len(val_items)} validation clips"
          + (f" ({why_random}: stratified random split, validation speakers may also be in training)" if why_random
             else f" ({plural(len({it.speaker for it in val_items}), 'validation speaker')}, none in training)"))
    return train_items, val_items


def train(data: Dataset, cfg: FinetuneConfig, run: Path, val_speakers: list[str] | None = None,
          split: tuple[list[Item], list[Item]] | None = None, overall: Any = None,
          resume: bool = False) -> dict:
    """Fine-tune on `data`, write the run folder, return metrics.json's content.

    split: (training, validation) items chosen by the caller (a k-fold fold); default `speaker_split`.
    overall: a progress bar over several runs, advanced once per training step.
    resume: continue after the last epoch `run/resume/` holds (finetune.state), if it holds one."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    start_run(run, cfg)
    train_items, val_items = split or split_train(data, cfg, val_speakers)
    val_cache = AudioCache(val_items)
    fit, val_features, total_steps = prepare_fit(cfg, train_items, val_cache, overall)
    model, sampler = fit.model, fit.sampler
    history: list[dict] = []
    best, best_epoch, step, first, stop, before = -math.inf, 0, 0, 1, False, 0.0
    if resume and has_state(run):
        history, best, best_epoch, step, first, stop, before = restore(run, fit)
    start = time.perf_counter() - before
    (run / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))  # this run's epochs only
    for epoch in range(first, 0 if stop else cfg.epochs + 1):
        sampler.set_epoch(epoch)
        tick = time.perf_counter()
        loss, step, audio = train_epoch(fit, step, epoch)
        train_s, tick = time.perf_counter() - tick, time.perf_counter()
        kept = f"{run / 'best'} keeps epoch {best_epoch}" if best_epoch else "no model was saved"
        metrics = validate(model, val_items, val_cache, val_features, cfg.window_seconds, f"epoch {epoch}", kept)
        history.append({"epoch": epoch, "step": step, "train_loss": loss, "val_uar": metrics["uar"],
                        "val_accuracy": metrics["accuracy"], "val_macro_f1": metrics["macro_f1"],
                        "train_seconds": train_s, "audio_seconds": audio, "val_seconds": time.perf_counter() - tick})
        better = metrics["uar"] > best
        say = overall.write if overall is not None else print
        log_epoch(run, history[-1], say, better)
        if better:
            best, best_epoch = metrics["uar"], epoch
            save_model(model, run / "best", extra={"labels": list(EMOTIONS), "finetune": to_dict(cfg),
                                                   "epoch": epoch, "val_uar": best})
        # a perfect validation UAR cannot be beaten (better means strictly higher), so every later epoch
        # would be spent for nothing: the same best/ and the same outputs
        perfect = best >= 1.0
        stop = bool(perfect or epoch - best_epoch >= cfg.patience or (cfg.max_steps and step >= cfg.max_steps))
        save_state(run, model, fit.opt, fit.sched, fit.scaler, fit.rng, fit.gen, fit.device,
                   {"epoch": epoch, "step": step, "best": best, "best_epoch": best_epoch, "history": history,
                    "stop": stop, "seconds": time.perf_counter() - start, "skipped": fit.guard.total})
        if stop:
            why = "; validation UAR is 1.000, which no later epoch can beat" if perfect else ""
            say(f"stopping after epoch {epoch} (best epoch {best_epoch}{why})")
            break
    if overall is not None:  # early stopping: the steps this run will not take
        overall.update(max(0, total_steps - step))
    plot_curves(history, run / "curves.png")
    result = finish(run, data, val_items, val_cache, cfg, best_epoch, time.perf_counter() - start)
    clear_state(run)  # finished: nothing left to resume
    return result


def prepare_fit(cfg: FinetuneConfig, train_items: list[Item], val_cache: AudioCache, overall: Any
                ) -> tuple[Fit, WindowFeatures | None, int]:
    """(what the epochs work on, the validation windows' cached features, the run's training steps): the model
    built and frozen as `cfg` says, the clips decoded, the frozen CNN's features cached, the optimizer."""
    fit_items = oversample(train_items, cfg.seed) if cfg.balance == "sampler" else train_items
    device = resolve_device(cfg.device)
    amp = resolve_amp(cfg.amp, device)
    model = build_classifier(cfg).to(device)
    model.freeze(cfg.freeze_feature_encoder, transformer=cfg.freeze_transformer_steps > 0)
    cache = AudioCache(fit_items)
    cache.prefetch(cfg.num_workers)
    rng, gen = random.Random(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    features, val_features = cached_features(model, cfg, cache, val_cache, amp, rng)
    lengths = [int(cfg.crop_seconds * SAMPLE_RATE)] * len(fit_items)  # crops: similar lengths
    sampler = BucketBatchSampler(lengths, batch_size=cfg.batch_size, seed=cfg.seed)
    total_steps = cfg.max_steps or cfg.epochs * len(sampler)
    opt, sched = make_optimizer(model, cfg, total_steps)
    autocast_ctx, scaler = autocast(amp, device)
    weights = class_weights(fit_items).to(device) if cfg.balance == "loss" else None
    targets, table = corpus_targets(fit_items)
    if table is not None:
        (overall.write if overall is not None else print)(partial_label_note(fit_items, targets, table))
    return (Fit(cfg, model, fit_items, cache, features, sampler, opt, sched, weights, rng, gen, device, autocast_ctx,
                scaler, overall, targets=targets, class_table=None if table is None else table.to(device)),
            val_features, total_steps)


def restore(run: Path, fit: Fit) -> tuple[list[dict], float, int, int, int, bool, float]:
    """(history, best, best epoch, step, first epoch to run, stop, seconds so far) of the killed run whose
    state `run/resume/` holds, with the model, optimizer, scheduler and generators of `fit` put back."""
    done = load_state(run, fit.model, fit.opt, fit.sched, fit.scaler, fit.rng, fit.gen, fit.device)
    step = done["step"]
    fit.guard.total = done["skipped"]
    if step >= fit.cfg.freeze_transformer_steps > 0:  # the head-only warm-up was over
        fit.model.freeze(fit.cfg.freeze_feature_encoder)
    print(f"resuming {run} after epoch {done['epoch']} (step {step}, best epoch {done['best_epoch']})")
    if fit.overall is not None:
        fit.overall.update(step)
    return (done["history"], done["best"], done["best_epoch"], step, done["epoch"] + 1, done["stop"],
            done["seconds"])


def validate(model: Wav2Vec2ForClassification, val_items: list[Item], val_cache: AudioCache,
             val_features: WindowFeatures | None, window_seconds: float, when: str, kept: str) -> dict:
    """Validation metrics of the model after an epoch; ValueError naming `when` for a diverged model (it is
    never saved as best/; `kept` says what is)."""
    try:
        if not all(bool(p.isfinite().all()) for p in model.parameters()):
            raise ValueError("the weights became NaN/inf")
        if val_features is not None:
            probs = val_features.probs(model)
            return classification_metrics(item_labels(val_items), probs.argmax(-1).tolist())
        return evaluate_items(model, val_items, val_cache, window_seconds)[0]
    except ValueError as e:
        raise ValueError(f"{when}: {e}; lower lr_head/lr_backbone ({kept})") from None


def log_epoch(run: Path, row: dict, say: Callable[[str], object], better: bool) -> None:
    """One epoch's line in history.jsonl and on the console."""
    with open(run / "history.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    say(f"epoch {row['epoch']}: loss {row['train_loss']:.3f}  val UAR {row['val_uar']:.3f}  acc "
        f"{row['val_accuracy']:.3f}  F1 {row['val_macro_f1']:.3f}  {row['audio_seconds'] / row['train_seconds']:.0f} "
        f"audio-s/s ({row['train_seconds']:.1f} s training, {row['val_seconds']:.1f} s validation)"
        f"{'  (best, saved)' if better else ''}")


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
