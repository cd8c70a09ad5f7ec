"""PNG figures: a fine-tuning run's confusion matrix and training curves; a recording's emotion timeline."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from w2v2.checkpoint import atomic_write  # noqa: E402
from w2v2.emotion.speech import NO_SPEECH  # noqa: E402


def draw_matrix(ax: plt.Axes, values: np.ndarray, text: list[list[str]], labels: list[str], title: str,
                fontsize: float | None = None) -> None:
    """A confusion matrix on `ax`: cells shaded by `values` (0-1, rows = true class), written with `text`."""
    ax.imshow(values, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=fontsize,
                    color="white" if values[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)


def plot_confusion(cm: list[list[int]], labels: list[str], path: Path, title: str) -> None:
    m = np.asarray(cm, dtype=float)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    draw_matrix(ax, norm, [[f"{int(v)}" for v in row] for row in m], labels, title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)


def plot_curves(history: list[dict], path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [h["train_loss"] for h in history], marker="o")
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    for key in ("val_uar", "val_accuracy", "val_macro_f1"):
        b.plot(epochs, [h[key] for h in history], marker="o", label=key.removeprefix("val_"))
    b.axhline(1 / 6, color="grey", linestyle=":", label="chance")
    b.set_xlabel("epoch")
    b.set_ylabel("validation")
    b.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)


def plot_timeline(df: pd.DataFrame, path: Path, title: str) -> None:
    """The six probabilities of each window (columns start_s, end_s, p_<emotion>) stacked over time from 0 to
    the recording's end, each window drawn at its centre and the first and last held to the ends; windows
    labelled "no speech" greyed; minutes for recordings over 5 min."""
    columns = [c for c in df.columns if c.startswith("p_")]
    end = float(df["end_s"].max())
    centres = ((df["start_s"] + df["end_s"]) / 2).to_numpy()
    x = np.concatenate([[0.0], centres, [end]])
    probs = df[columns].to_numpy()
    probs = np.concatenate([probs[:1], probs, probs[-1:]])
    scale = 60 if end > 300 else 1
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.stackplot(x / scale, probs.T, labels=[c.removeprefix("p_") for c in columns], alpha=0.85)
    silent = df[df["label_name"] == NO_SPEECH] if "label_name" in df else df.iloc[:0]
    for k, row in enumerate(silent.itertuples()):
        ax.axvspan(row.start_s / scale, row.end_s / scale, color="0.9", alpha=0.9, zorder=3,
                   label=NO_SPEECH if k == 0 else None)
    ax.set_xlim(0, end / scale)
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (min)" if scale == 60 else "time (s)")
    ax.set_ylabel("probability")
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
