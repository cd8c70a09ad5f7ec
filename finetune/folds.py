"""`python -m finetune train folds=K`: the folds of a k-fold recipe (trained by `finetune.recipe`), each
validated on its own K-th of the training clips.

Design choices:
- folds are speaker-disjoint whenever every clip has a speaker and there are at least K speakers
  (largest speakers first, each to the fold with the fewest clips, so folds are of similar size);
  otherwise stratified by class (each class dealt round-robin, continuing where the last stopped);
- every training clip is validated exactly once, so the out-of-fold (OOF) probabilities cover the
  training set: their metrics estimate what one such model does on unseen speakers. They are slightly
  optimistic: a fold's validation clips also choose its best epoch (a nested split would cost K times
  more); oof_probs.csv is what stacking and blending train on;
- the folds' test probabilities are averaged (see `w2v2.emotion.members`) into one submission.csv and
  test_probs.csv in the parent folder; each fold_k/ (fold_k_probe/, ...) is a complete run folder.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pandas as pd
import torch

from finetune.metrics import classification_metrics
from finetune.outputs import PROB_COLUMNS, probs_frame, write_csv
from finetune.plots import plot_confusion
from w2v2.data.datasets import Item, item_labels, no_speaker_split
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


def validation_words(items: list[Item], val_fraction: float, val_speakers: list[str] | None, own: bool = True,
                     shares: list[float] | None = None) -> str:
    """How validation clips were chosen from the labelled `items`, exactly as `speaker_split` chose them;
    own: said of each seed of a recipe ("3 seed(s), each validating on " + these words); shares: each
    seed's validation clips as a share of `items` (whole speakers rarely make exactly `val_fraction`)."""
    its = "its own " if own else ""
    if val_speakers:
        return f"the --val-speakers {', '.join(map(str, val_speakers))}, none in training"
    if why := no_speaker_split(items):
        return (f"{its}stratified random split ({why}): {val_fraction:.0%} of every class's clips, whose speakers "
                "may also be in training")
    if shares:
        lo, hi = f"{min(shares):.0%}", f"{max(shares):.0%}"
        return f"{its}whole speakers ({lo if lo == hi else f'{lo}-{hi}'} of the clips), none in training"
    return f"{its}whole speakers (about {val_fraction:.0%} of the clips), none in training"


def stratified_folds(items: list[Item], k: int, rng: random.Random) -> list[int]:
    """Each class's clips shuffled and dealt round-robin; the next class continues where the last
    stopped, so fold sizes differ by at most one clip and each class by at most one per fold."""
    folds, offset = [0] * len(items), 0
    for label in sorted(set(item_labels(items))):
        idx = [i for i, it in enumerate(items) if it.label == label]
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            folds[i] = (offset + j) % k
        offset += len(idx)
    return folds


def read_probs(path: Path) -> torch.Tensor:
    """The six probability columns of a CSV we wrote, (n, 6)."""
    return torch.tensor(pd.read_csv(path)[PROB_COLUMNS].to_numpy(), dtype=torch.float32)


def out_of_fold(run: Path, items: list[Item], fold_of: list[int], oof: torch.Tensor) -> dict:
    """oof_probs.csv (training order, with each clip's fold) and the metrics over every training clip."""
    df = probs_frame(items, oof, labelled=True)
    df.insert(3, "fold", [f + 1 for f in fold_of])
    write_csv(df, run / "oof_probs.csv")
    metrics = classification_metrics(item_labels(items), oof.argmax(-1).tolist())
    plot_confusion(metrics["confusion_matrix"], list(EMOTIONS), run / "confusion_matrix_oof.png",
                   f"out-of-fold, {len(items)} training clips (UAR {metrics['uar']:.3f})")
    return {"oof": metrics}
