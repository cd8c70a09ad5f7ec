"""Classification metrics for emotion recognition: accuracy, UAR, macro-F1, confusion matrix.

UAR (unweighted average recall, the mean of per-class recalls) is the headline metric of speech
emotion recognition (Schuller et al., 2009): it is not inflated by frequent classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from w2v2.data.labels import EMOTIONS

HEADLINE = ("accuracy", "uar", "macro_f1")  # what every line and table of results reports


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int = len(EMOTIONS)) -> np.ndarray:
    """(num_classes, num_classes) counts; rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return cm


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int],
                           names: Sequence[str] = EMOTIONS) -> dict:
    """accuracy, uar, macro_f1, per-class recall/precision/f1 (by name) and the confusion matrix.

    Classes absent from y_true do not count in UAR; macro-F1 averages over classes present in
    y_true or y_pred.
    """
    cm = confusion_matrix(y_true, y_pred, len(names))
    support, predicted, correct = cm.sum(1), cm.sum(0), np.diag(cm)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, correct / support, np.nan)
        precision = np.where(predicted > 0, correct / predicted, 0.0)
        f1 = np.where(precision + np.nan_to_num(recall) > 0,
                      2 * precision * np.nan_to_num(recall) / (precision + np.nan_to_num(recall)), 0.0)
    present = (support > 0) | (predicted > 0)
    total = int(cm.sum())
    return {
        "n": total,
        "accuracy": float(correct.sum() / total) if total else 0.0,
        "uar": float(np.nanmean(recall)) if (support > 0).any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class_recall": {n: (None if np.isnan(r) else float(r)) for n, r in zip(names, recall, strict=True)},
        "per_class_f1": {n: float(v) for n, v in zip(names, f1, strict=True)},
        "support": {n: int(s) for n, s in zip(names, support, strict=True)},
        "confusion_matrix": cm.tolist(),
        "labels": list(names),
    }


def metrics_line(m: dict, counted: str | None = None) -> str:
    """'accuracy 0.512  UAR 0.498  macro-F1 0.480  (120 clips)': a `classification_metrics` result as the
    commands print it; `counted` replaces what the parentheses hold (the clip count)."""
    counted = f"{m['n']} clips" if counted is None else counted
    return f"accuracy {m['accuracy']:.3f}  UAR {m['uar']:.3f}  macro-F1 {m['macro_f1']:.3f}  ({counted})"


def label_weights(labels: torch.Tensor) -> torch.Tensor:
    """Balanced loss weights (n / (classes * count)) of the emotions in `labels`; 0 for an absent one."""
    counts = torch.bincount(labels, minlength=len(EMOTIONS)).float()
    return torch.where(counts > 0, counts.sum() / (len(EMOTIONS) * counts.clamp(min=1)), torch.zeros(()))
