"""The figures of `python -m finetune report`: each function draws one matplotlib figure and returns it;
`data_uri` turns a figure into the base64 PNG the page embeds (so the page is one file)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from finetune.analysis import Calibration  # noqa: E402
from finetune.plots import draw_matrix  # noqa: E402

CHANCE = 1 / 6  # UAR of guessing among the six emotions


def data_uri(fig: Figure) -> str:
    """The figure as a `data:image/png;base64,...` URI (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def confusion_figure(cm: list[list[int]], labels: list[str], title: str) -> Figure:
    """Counts and row-normalised shares (each true class's recall on the diagonal), side by side."""
    m = np.asarray(cm, dtype=float)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2))
    draw_matrix(a, norm, [[f"{int(v)}" for v in row] for row in m], labels, f"{title}: counts", fontsize=8)
    draw_matrix(b, norm, [[f"{v:.2f}" for v in row] for row in norm], labels, f"{title}: share of each true class",
                fontsize=8)
    fig.tight_layout()
    return fig


def curves_figure(histories: dict[str, list[dict]], best: dict[str, int]) -> Figure:
    """Training loss and validation UAR per epoch, one line per model, its kept (best) epoch starred."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, history in histories.items():
        epochs = [h["epoch"] for h in history]
        a.plot(epochs, [h["train_loss"] for h in history], label=name)
        line, = b.plot(epochs, [h["val_uar"] for h in history], label=name)
        kept = [h["val_uar"] for h in history if h["epoch"] == best[name]]
        b.plot([best[name]] * len(kept), kept, marker="*", markersize=12, color=line.get_color(), linestyle="none")
    b.axhline(CHANCE, color="grey", linestyle=":", label="chance")
    a.set(xlabel="epoch", ylabel="training loss")
    b.set(xlabel="epoch", ylabel="validation UAR")
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig


def members_figure(names: list[str], val_uar: list[float], test_uar: list[float | None],
                   ensemble: dict[str, float]) -> Figure:
    """Each member's validation (and test) UAR as bars; the ensemble's UARs (test, out-of-fold) as lines."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(names) + 2), 3.8))
    x = np.arange(len(names))
    ax.bar(x - 0.2, val_uar, 0.4, label="member: validation")
    if any(t is not None for t in test_uar):
        ax.bar(x + 0.2, [np.nan if t is None else t for t in test_uar], 0.4, label="member: test")
    for (name, value), style in zip(ensemble.items(), ("-", "--", "-."), strict=False):
        ax.axhline(value, color="black", linestyle=style, label=f"ensemble: {name} ({value:.3f})")
    ax.axhline(CHANCE, color="grey", linestyle=":", label="chance")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("UAR")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def layer_weights_figure(weights: dict[str, np.ndarray]) -> Figure:
    """One panel per model, one bar per hidden state (0: the CNN's projected features, then each layer)."""
    fig, axes = plt.subplots(1, len(weights), figsize=(min(4.5 * len(weights), 14), 3.4), squeeze=False)
    for ax, (name, w) in zip(axes[0], weights.items(), strict=True):
        ax.bar(np.arange(len(w)), w)
        ax.axhline(1 / len(w), color="grey", linestyle=":", label="uniform")
        ax.set(xlabel="layer (0 = CNN features)", ylabel="softmax weight", title=name)
        ax.set_xticks(np.arange(len(w)))
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def embedding_figure(xy: np.ndarray, share: np.ndarray, labels: np.ndarray, preds: np.ndarray,
                     names: list[str]) -> Figure:
    """Clips on the two principal axes, coloured by true emotion; misclassified ones ringed in black."""
    fig, ax = plt.subplots(figsize=(6.5, 5))
    colours = plt.get_cmap("tab10")
    for c, name in enumerate(names):
        mine = labels == c
        ax.scatter(xy[mine, 0], xy[mine, 1], s=22, color=colours(c), label=name)
    wrong = labels != preds
    ax.scatter(xy[wrong, 0], xy[wrong, 1], s=70, facecolors="none", edgecolors="black", linewidths=1,
               label=f"misclassified ({int(wrong.sum())})")
    ax.set(xlabel=f"PC 1 ({share[0]:.0%} of variance)", ylabel=f"PC 2 ({share[1]:.0%} of variance)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def reliability_figure(cal: Calibration, title: str) -> Figure:
    """Accuracy per confidence bin against the diagonal of perfect calibration, with the clips per bin."""
    fig, (a, b) = plt.subplots(2, 1, figsize=(5, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    centres, width = (cal.edges[:-1] + cal.edges[1:]) / 2, np.diff(cal.edges)
    a.bar(centres, np.nan_to_num(cal.accuracy), width * 0.9, label="accuracy")
    a.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    a.set(ylabel="accuracy", ylim=(0, 1), title=f"{title} (ECE {cal.ece:.3f})")
    a.legend(fontsize=8, loc="upper left")
    b.bar(centres, cal.count, width * 0.9, color="grey")
    b.set(xlabel="confidence (top probability)", ylabel="clips", xlim=(0, 1))
    fig.tight_layout()
    return fig
