"""`python -m finetune train --folds K`: K models, each validated on its own K-th of the training clips.

Design choices:
- folds are speaker-disjoint whenever every clip has a speaker and there are at least K speakers
  (largest speakers first, each to the fold with the fewest clips, so folds are of similar size);
  otherwise stratified by class (each class dealt round-robin, continuing where the last stopped);
- every training clip is validated exactly once, so the out-of-fold (OOF) probabilities cover the
  training set: their metrics estimate what one such model does on unseen speakers. They are slightly
  optimistic: a fold's validation clips also choose its best epoch (a nested split would cost K times
  more); oof_probs.csv is what stacking and blending train on;
- the folds' test probabilities are averaged (see `finetune.ensemble`) into one submission.csv and
  test_probs.csv in the parent folder; each fold_k/ is a complete run folder of its own.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import torch
import yaml
from einops import reduce

from finetune.config import FinetuneConfig
from finetune.ensemble import PROB_COLUMNS, probs_frame, write_csv
from finetune.metrics import classification_metrics
from finetune.plots import plot_confusion
from finetune.train import train, write_test_outputs
from w2v2.config import to_dict
from w2v2.data.datasets import Dataset, Item, no_speaker_split
from w2v2.data.labels import EMOTIONS


def assign_folds(items: list[Item], k: int, seed: int) -> tuple[list[int], str]:
    """(fold 0..k-1 of each item, how the folds were formed)."""
    rng = random.Random(seed)
    why_not = no_speaker_split(items)
    speakers = sorted({str(it.speaker) for it in items}) if why_not is None else []
    if why_not is None and len(speakers) < k:
        why_not = f"{len(speakers)} speakers for {k} folds"
    if why_not is not None:
        return stratified_folds(items, k, rng), f"{why_not}: stratified by class, speakers may share folds"
    counts = Counter(str(it.speaker) for it in items)
    rng.shuffle(speakers)  # ties in size are broken at random (sorted below is stable)
    sizes, fold_of = [0] * k, {}
    for s in sorted(speakers, key=lambda s: -counts[s]):
        fold_of[s] = min(range(k), key=lambda f: sizes[f])
        sizes[fold_of[s]] += counts[s]
    return [fold_of[str(it.speaker)] for it in items], f"speaker-disjoint, {len(speakers)} speakers"


def stratified_folds(items: list[Item], k: int, rng: random.Random) -> list[int]:
    """Each class's clips shuffled and dealt round-robin; the next class continues where the last
    stopped, so fold sizes differ by at most one clip and each class by at most one per fold."""
    folds, offset = [0] * len(items), 0
    for label in sorted({it.label for it in items}):
        idx = [i for i, it in enumerate(items) if it.label == label]
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            folds[i] = (offset + j) % k
        offset += len(idx)
    return folds


def train_folds(data: Dataset, cfg: FinetuneConfig, run: Path, k: int) -> dict:
    """Train fold_1..fold_k/ under `run`; write the out-of-fold and ensemble outputs; return metrics.json's content."""
    if len(data.train) < k:
        raise ValueError(f"{data.root}: {len(data.train)} labelled clips are too few for {k} folds")
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    fold_of, how = assign_folds(data.train, k, cfg.seed)
    print(f"{k} folds ({how}) of {len(data.train)} training clips")
    start, results, oof = time.perf_counter(), [], torch.zeros(len(data.train), len(EMOTIONS))
    for f in range(k):
        val_idx = [i for i, g in enumerate(fold_of) if g == f]
        train_items = [it for it, g in zip(data.train, fold_of, strict=True) if g != f]
        val_items = [data.train[i] for i in val_idx]
        if not val_items:
            raise ValueError(f"fold {f + 1} of {k} would validate no clip: use fewer folds")
        print(f"fold {f + 1}/{k}: {len(train_items)} training / {len(val_items)} validation clips "
              f"({len({it.speaker for it in val_items})} validation speakers) -> {run / f'fold_{f + 1}'}")
        tick = time.perf_counter()
        result = train(data, cfg, run / f"fold_{f + 1}", split=(train_items, val_items))
        oof[val_idx] = read_probs(run / f"fold_{f + 1}" / "val_probs.csv")
        m = result["validation"]
        print(f"fold {f + 1}/{k} done in {time.perf_counter() - tick:.0f} s: best epoch {result['best_epoch']}, "
              f"validation UAR {m['uar']:.3f}")
        results.append(result | {"train_clips": len(train_items), "seconds": time.perf_counter() - tick})
    summary = {"folds": k, "split": how, "per_fold": [fold_summary(r) for r in results]}
    summary |= out_of_fold(run, data.train, fold_of, oof)
    if data.test:
        probs = reduce(torch.stack([read_probs(run / f"fold_{f + 1}" / "test_probs.csv") for f in range(k)]),
                       "m n l -> n l", "mean")
        summary |= write_test_outputs(run, data, probs)
    summary["train_seconds"] = time.perf_counter() - start
    (run / "metrics.json").write_text(json.dumps(summary, indent=2))
    print_table(summary)
    return summary


def read_probs(path: Path) -> torch.Tensor:
    """The six probability columns of a CSV we wrote, (n, 6)."""
    return torch.tensor(pd.read_csv(path)[PROB_COLUMNS].to_numpy(), dtype=torch.float32)


def out_of_fold(run: Path, items: list[Item], fold_of: list[int], oof: torch.Tensor) -> dict:
    """oof_probs.csv (training order, with each clip's fold) and the metrics over every training clip."""
    df = probs_frame(items, oof, labelled=True)
    df.insert(3, "fold", [f + 1 for f in fold_of])
    write_csv(df, run / "oof_probs.csv")
    metrics = classification_metrics([it.label for it in items], oof.argmax(-1).tolist())
    plot_confusion(metrics["confusion_matrix"], list(EMOTIONS), run / "confusion_matrix_oof.png",
                   f"out-of-fold, {len(items)} training clips (UAR {metrics['uar']:.3f})")
    return {"oof": metrics}


def fold_summary(result: dict) -> dict:
    keep = ("accuracy", "uar", "macro_f1", "n")
    out = {"train_clips": result["train_clips"], "best_epoch": result["best_epoch"], "seconds": result["seconds"],
           "validation": {key: result["validation"][key] for key in keep}}
    if "test" in result:
        out["test"] = {key: result["test"][key] for key in keep}
    return out


def print_table(summary: dict) -> None:
    """One row per fold, then the out-of-fold row and, with test labels, the ensemble's test row."""
    print(f"{'':>14} {'train':>6} {'val':>5} {'epoch':>5} {'accuracy':>8} {'UAR':>6} {'macro-F1':>8} "
          f"{'test UAR':>8} {'seconds':>7}")
    for f, r in enumerate(summary["per_fold"], start=1):
        v, test = r["validation"], f"{r['test']['uar']:.3f}" if "test" in r else "-"
        print(f"{'fold ' + str(f):>14} {r['train_clips']:>6} {v['n']:>5} {r['best_epoch']:>5} {v['accuracy']:>8.3f} "
              f"{v['uar']:>6.3f} {v['macro_f1']:>8.3f} {test:>8} {r['seconds']:>7.0f}")
    o = summary["oof"]
    print(f"{'out-of-fold':>14} {'':>6} {o['n']:>5} {'':>5} {o['accuracy']:>8.3f} {o['uar']:>6.3f} "
          f"{o['macro_f1']:>8.3f} {'':>8} {summary['train_seconds']:>7.0f}")
    if "test" in summary:
        t = summary["test"]
        print(f"{'ensemble test':>14} {'':>6} {t['n']:>5} {'':>5} {t['accuracy']:>8.3f} {t['uar']:>6.3f} "
              f"{t['macro_f1']:>8.3f} {t['uar']:>8.3f}")
