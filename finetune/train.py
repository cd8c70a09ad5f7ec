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
from finetune.metrics import classification_metrics
from finetune.model import build_classifier
from finetune.plots import plot_confusion, plot_curves
from w2v2.checkpoint import save_model
from w2v2.config import to_dict
from w2v2.data.audio import SAMPLE_RATE
from w2v2.data.batching import BucketBatchSampler, collate_waves
from w2v2.data.datasets import Dataset, Item, labelled_test, no_speaker_split, speaker_split
from w2v2.data.labels import EMOTIONS
from w2v2.training import NonFiniteGuard, autocast, native_bf16, warmup_decay


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


def evaluate_items(model: torch.nn.Module, items: list[Item], cache: AudioCache, window_seconds: float,
                   progress: bool = False, tta: tuple[float, ...] = ()) -> tuple[dict, torch.Tensor]:
    """Metrics and probabilities (n, 6) over labelled items (undecodable clips predicted as silence)."""
    probs = predict_probs(model, cached_waves(cache, len(items)), window_seconds, progress=progress, tta=tta)
    return classification_metrics([it.label for it in items], probs.argmax(-1).tolist()), probs


def amp_context(amp: str) -> AbstractContextManager:
    """The training steps' autocast (fine-tuning runs on the CPU): `amp` resolved, auto = bf16 where the
    CPU computes it natively."""
    cpu = torch.device("cpu")
    if amp == "auto":
        amp = "bf16" if native_bf16(cpu) else "none"
    return autocast(amp, cpu)[0]


def make_optimizer(model: torch.nn.Module, cfg: FinetuneConfig, total_steps: int):
    groups = [{"params": list(model.head.parameters()), "lr": cfg.lr_head},
              {"params": list(model.backbone.parameters()), "lr": cfg.lr_backbone}]
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    warmup = max(1, int(cfg.warmup_fraction * total_steps))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, warmup_decay(warmup, total_steps))


@dataclass
class Fit:
    """What the epochs work on."""

    cfg: FinetuneConfig
    model: torch.nn.Module
    items: list[Item]
    cache: AudioCache
    sampler: BucketBatchSampler
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    weights: torch.Tensor | None  # class weights of the loss (balance=loss)
    rng: random.Random  # augmentation choices
    gen: torch.Generator  # crops, masks, noise
    amp: AbstractContextManager = field(default_factory=nullcontext)  # autocast of the training steps
    guard: NonFiniteGuard = field(default_factory=lambda: NonFiniteGuard(
        20, "lower lr_head/lr_backbone or check the data"))


def train_epoch(fit: Fit, step: int, epoch: int) -> tuple[float, int, float]:
    """One pass over the sampler: (mean loss, global step, seconds of audio the model was trained on)."""
    cfg, model, cache, gen = fit.cfg, fit.model, fit.cache, fit.gen
    model.train()
    total, n, samples = 0.0, 0, 0
    crop = int(cfg.crop_seconds * SAMPLE_RATE)
    bar = tqdm(fit.sampler, desc=f"epoch {epoch}", unit="batch", leave=False, disable=None)
    for batch in bar:
        if step == cfg.freeze_transformer_steps > 0:  # the head-only warm-up is over
            model.freeze(cfg.freeze_feature_encoder)
        pairs = [(cache[i], fit.items[i].label) for i in batch]
        pairs = [(augment(w, cfg.augmentation, fit.rng, crop, gen) if cfg.augment else w, y)
                 for w, y in pairs if w is not None]
        if not pairs:
            continue
        wave, padding_mask = collate_waves([w for w, _ in pairs], crop, gen)
        samples += int((~padding_mask).sum())
        labels = torch.tensor([y for _, y in pairs])
        with fit.amp:
            logits = model(wave, padding_mask, generator=gen).logits
        loss = F.cross_entropy(logits.float(), labels, weight=fit.weights)
        if fit.guard.skip(bool(torch.isfinite(loss)), step):
            bar.write(f"step {step}: non-finite loss, batch skipped")
            continue
        fit.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        fit.opt.step()
        fit.sched.step()
        step += 1
        total, n = total + loss.item(), n + 1
        bar.set_postfix(loss=f"{total / n:.3f}")
        if cfg.max_steps and step >= cfg.max_steps:
            break
    return total / max(n, 1), step, samples / SAMPLE_RATE


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
          split: tuple[list[Item], list[Item]] | None = None) -> dict:
    """Fine-tune on `data`, write the run folder, return metrics.json's content.

    split: (training, validation) items chosen by the caller (a k-fold fold); default `speaker_split`."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)  # LayerDrop draws from Python's generator (torch's is seeded in build_classifier)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    train_items, val_items = split or split_train(data, cfg, val_speakers)
    fit_items = oversample(train_items, cfg.seed) if cfg.balance == "sampler" else train_items
    model = build_classifier(cfg)
    model.freeze(cfg.freeze_feature_encoder, transformer=cfg.freeze_transformer_steps > 0)
    cache = AudioCache(fit_items)
    val_cache = AudioCache(val_items)
    lengths = [int(cfg.crop_seconds * SAMPLE_RATE)] * len(fit_items)  # crops: similar lengths
    sampler = BucketBatchSampler(lengths, batch_size=cfg.batch_size, seed=cfg.seed)
    steps_per_epoch = len(sampler)
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    opt, sched = make_optimizer(model, cfg, total_steps)
    fit = Fit(cfg, model, fit_items, cache, sampler, opt, sched,
              class_weights(fit_items) if cfg.balance == "loss" else None,
              random.Random(cfg.seed), torch.Generator().manual_seed(cfg.seed), amp_context(cfg.amp))
    history, best, best_epoch, step, start = [], -math.inf, 0, 0, time.perf_counter()
    (run / "history.jsonl").write_text("")  # this run's epochs only
    for epoch in range(1, cfg.epochs + 1):
        sampler.set_epoch(epoch)
        tick = time.perf_counter()
        loss, step, audio = train_epoch(fit, step, epoch)
        train_s, tick = time.perf_counter() - tick, time.perf_counter()
        kept = f"{run / 'best'} keeps epoch {best_epoch}" if best_epoch else "no model was saved"
        try:
            if not all(bool(p.isfinite().all()) for p in model.parameters()):
                raise ValueError("the weights became NaN/inf")
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
        print(f"epoch {epoch}: loss {loss:.3f}  val UAR {metrics['uar']:.3f}  acc {metrics['accuracy']:.3f}  "
              f"F1 {metrics['macro_f1']:.3f}  {audio / train_s:.0f} audio-s/s ({train_s:.1f} s training, "
              f"{val_s:.1f} s validation){'  (best, saved)' if better else ''}")
        if better:
            best, best_epoch = metrics["uar"], epoch
            save_model(model, run / "best", extra={"labels": list(EMOTIONS), "finetune": to_dict(cfg),
                                                   "epoch": epoch, "val_uar": best})
        if epoch - best_epoch >= cfg.patience or (cfg.max_steps and step >= cfg.max_steps):
            print(f"stopping after epoch {epoch} (best epoch {best_epoch})")
            break
    plot_curves(history, run / "curves.png")
    return finish(run, data, val_items, val_cache, cfg, best_epoch, time.perf_counter() - start)


def finish(run: Path, data: Dataset, val_items: list[Item], val_cache: AudioCache, cfg: FinetuneConfig,
           best_epoch: int, seconds: float) -> dict:
    """Reload the best checkpoint; metrics.json, confusion matrices, val_probs.csv and, for competitions,
    submission.csv and test_probs.csv (validation and test predicted with `cfg.tta`)."""
    from w2v2.checkpoint import load_model

    model = load_model(run / "best").eval()
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
        result["test"] = classification_metrics([it.label for it in labelled], [pred_of[it.id] for it in labelled])
        plot_confusion(result["test"]["confusion_matrix"], list(EMOTIONS), folder / "confusion_matrix_test.png",
                       f"test (UAR {result['test']['uar']:.3f})")
    return result


def write_submission(path: Path, data: Dataset, preds: list[int]) -> None:
    """sample_submission's ids, order and columns, with our labels."""
    sub = data.submission.copy() if data.submission is not None else pd.DataFrame({"id": [t.id for t in data.test]})
    label_col = next((c for c in sub.columns if c.strip().lower() == "label"), None)
    sub[label_col or (sub.columns[-1] if len(sub.columns) > 1 else "label")] = preds
    write_csv(sub, path)
