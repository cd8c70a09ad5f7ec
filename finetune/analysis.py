"""The statistics of `python -m finetune report`, each a small pure function of a run's own numbers.

Design choices:
- the bootstrap resamples (true, predicted) pairs, which a confusion matrix holds exactly: the interval
  needs no probabilities and its point estimate is metrics.json's UAR by construction;
- UAR of a resample counts only the classes it contains, as `classification_metrics` does;
- calibration is the top-label kind (Guo et al., 2017): the most probable class's probability against
  whether it was right, in equal-width bins; ECE weights each bin's gap by its share of the clips;
- the utterance embedding is what the head reads before its projector: each clip's frame-averaged hidden
  states mixed by the head's own softmax layer weights (standardised where the head standardises), so the
  2-D picture shows the space the classifier separates, not an arbitrary layer's;
- PCA by SVD in numpy: no t-SNE, which no dependency of ours provides.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from einops import einsum
from safetensors import safe_open

from w2v2.data.datasets import Item
from w2v2.emotion.windows import layer_means
from w2v2.model import Wav2Vec2ForClassification


def pairs_of(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (true, predicted) label of every clip a confusion matrix (classes, classes) counts."""
    true, pred = np.nonzero(cm)
    counts = cm[true, pred]
    return np.repeat(true, counts), np.repeat(pred, counts)


def resampled_uar(true: np.ndarray, pred: np.ndarray, classes: int, idx: np.ndarray) -> np.ndarray:
    """UAR of each resample: idx (resamples, clips) indexes the (true, pred) pairs."""
    boots = len(idx)
    t, hit = true[idx], (true[idx] == pred[idx]).astype(float)
    # per resample and class: clips and correct ones, counted at once by offsetting each resample's labels
    offset = (np.arange(boots)[:, None] * classes + t).ravel()
    support = np.bincount(offset, minlength=boots * classes).reshape(boots, classes)
    correct = np.bincount(offset, weights=hit.ravel(), minlength=boots * classes).reshape(boots, classes)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nanmean(np.where(support > 0, correct / support, np.nan), axis=1)


def bootstrap_uar(cm: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of UAR over `n_boot` resamples (with replacement) of the clips in `cm`."""
    true, pred = pairs_of(np.asarray(cm))
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // max(len(true), 1))  # resamples at a time: memory stays ~100 MB for any corpus
    parts, done = [], 0
    while done < n_boot:
        idx = rng.integers(0, len(true), size=(min(chunk, n_boot - done), len(true)))
        parts.append(resampled_uar(true, pred, len(cm), idx))
        done += len(idx)
    uar = np.concatenate(parts)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(uar, [tail, 100 - tail])
    return float(low), float(high)


def precision(cm: np.ndarray) -> np.ndarray:
    """Per predicted class, the share of its clips that were right (0 where never predicted)."""
    cm = np.asarray(cm, dtype=float)
    return np.divide(np.diag(cm), cm.sum(0), out=np.zeros(len(cm)), where=cm.sum(0) > 0)


class Calibration(NamedTuple):
    edges: np.ndarray  # (bins+1,) confidence bin edges
    confidence: np.ndarray  # (bins,) mean top probability per bin (nan where empty)
    accuracy: np.ndarray  # (bins,) share right per bin (nan where empty)
    count: np.ndarray  # type: ignore[assignment]  # (bins,) clips per bin; shadows tuple.count, as allowed at runtime
    ece: float


def calibration(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> Calibration:
    """Reliability of probs (n, classes) against labels (n,): top-label confidence in `bins` equal bins."""
    top, right = probs.max(1), (probs.argmax(1) == labels).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(top, edges[1:-1]), 0, bins - 1)  # a probability of exactly 1 is in the last bin
    count = np.bincount(which, minlength=bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        confidence = np.bincount(which, weights=top, minlength=bins) / count
        accuracy = np.bincount(which, weights=right, minlength=bins) / count
    gaps = np.where(count > 0, np.abs(accuracy - confidence), 0.0)
    return Calibration(edges, confidence, accuracy, count, float((gaps * count).sum() / max(len(labels), 1)))


def confidently_wrong(labels: np.ndarray, probs: np.ndarray, k: int = 10) -> list[tuple[int, int, int, float]]:
    """Up to k (row, true, predicted, its probability) of the wrong predictions, most confident first."""
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != labels)
    order = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:k]
    return [(int(i), int(labels[i]), int(pred[i]), float(probs[i, pred[i]])) for i in order]


def layer_weights(ckpt: Path) -> np.ndarray | None:
    """The softmax of a classifier checkpoint's learned layer weights (layers+1,), read from its weights
    file alone; None for a head without a weighted layer sum."""
    with safe_open(str(ckpt / "model.safetensors"), framework="pt") as f:
        if "head.layer_weights" not in f.keys():
            return None
        return torch.softmax(f.get_tensor("head.layer_weights").float(), -1).numpy()


def utterance_embeddings(model: Wav2Vec2ForClassification, items: list[Item], window_seconds: float) -> np.ndarray:
    """(b, d): per clip, the frame-averaged hidden states the head mixes (its weighted layer sum, or the last
    layer), standardised as the head standardises them."""
    head = model.head
    v = layer_means(model, items, window_seconds, progress=True, desc="embeddings")  # (b, layers+1, d)
    if head.cfg.weighted_layer_sum:
        if head.cfg.standardize:
            v = (v - head.input_mean) / head.input_std
        x = einsum(v, torch.softmax(head.layer_weights.detach(), -1), "b n d, n -> b d")
    else:
        x = v[:, -1]
        if head.cfg.standardize:
            x = (x - head.input_mean[0]) / head.input_std[0]
    return x.numpy()


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) coordinates of x (n, d) on its two principal axes, and their shares of the variance (2,)."""
    centred = x - x.mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    share = s**2 / max(float((s**2).sum()), 1e-12)
    return u[:, :2] * s[:2], share[:2]
