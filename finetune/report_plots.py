"""The figures of `python -m finetune report`: each function draws one matplotlib figure and returns it;
`data_uri` turns a figure into the base64 PNG the page embeds (so the page is one file)."""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

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


def curves_figure(histories: dict[str, list[dict]], best: dict[str, int], kinds: dict[str, str] | None = None
                  ) -> Figure:
    """Training loss (top) and validation UAR (bottom) per epoch, one line per model, its kept (best) epoch
    starred; with `kinds` (model -> kind), one column of axes per kind, since a fine-tune's epoch, a probe's
    and a tiny model's are different units."""
    groups: dict[str, list[str]] = {}
    for name in histories:
        groups.setdefault((kinds or {}).get(name, ""), []).append(name)
    fig, axes = plt.subplots(2, len(groups), figsize=(max(5.0 * len(groups), 8.0), 6.4), squeeze=False)
    for col, (kind, names) in enumerate(groups.items()):
        a, b = axes[0][col], axes[1][col]
        for name in names:
            history = histories[name]
            epochs = [h["epoch"] for h in history]
            a.plot(epochs, [h["train_loss"] for h in history], label=name)
            line, = b.plot(epochs, [h["val_uar"] for h in history], label=name)
            kept = [h["val_uar"] for h in history if h["epoch"] == best[name]]
            b.plot([best[name]] * len(kept), kept, marker="*", markersize=12, color=line.get_color(),
                   linestyle="none")
        b.axhline(CHANCE, color="grey", linestyle=":", label="chance")
        a.set(ylabel="training loss", title=f"{kind} ({len(names)})" if kind else None)
        b.set(xlabel=f"{kind} epoch".strip(), ylabel="validation UAR")
        b.legend(fontsize=7)
        for ax in (a, b):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
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


def layer_weights_figure(weights: dict[str, np.ndarray], columns: int = 3) -> Figure:
    """One small panel per model (a grid of `columns`, shared axes), one bar per hidden state (0: the CNN's
    projected features, then each layer)."""
    rows = math.ceil(len(weights) / columns)
    cols = min(columns, len(weights))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False, sharey=True)
    for ax, (name, w) in zip(axes.flat, weights.items(), strict=False):
        ax.bar(np.arange(len(w)), w)
        ax.axhline(1 / len(w), color="grey", linestyle=":", label="uniform")
        ax.set_title(name, fontsize=9)
        ax.set_xticks(np.arange(len(w)))
    for ax in list(axes.flat)[len(weights):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("layer (0 = CNN features)")
    for ax in axes[:, 0]:
        ax.set_ylabel("softmax weight")
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
