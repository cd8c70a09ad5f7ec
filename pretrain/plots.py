"""Curves of a pretraining run from its log.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_log(log: Path, out: Path) -> None:
    if not log.is_file():
        return
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    for ax, key in zip(axes, ("loss", "accuracy", "perplexity", "lr"), strict=True):
        ax.plot(steps, [r[key] for r in rows])
        ax.set_title(key if key != "accuracy" else "contrastive accuracy")
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
