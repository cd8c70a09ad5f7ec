"""Curves of a pretraining run from its log.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from w2v2.checkpoint import atomic_write  # noqa: E402


def plot_log(log: Path | list[Path], out: Path) -> None:
    """Loss, contrastive accuracy, perplexity and learning rate over the updates of one run's log.jsonl, or
    of several runs, each continuing the one before (steps counted on; a dotted line where a stage starts)."""
    logs = [log] if isinstance(log, Path) else log
    if not all(p.is_file() for p in logs):
        return
    rows, starts, offset = [], [], 0
    for p in logs:
        stage = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        rows += [{**r, "step": r["step"] + offset} for r in stage]
        starts.append(offset)
        offset += stage[-1]["step"] if stage else 0
    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    for ax, key in zip(axes, ("loss", "accuracy", "perplexity", "lr"), strict=True):
        ax.plot(steps, [r[key] for r in rows])
        for start in starts[1:]:
            ax.axvline(start, color="grey", linestyle=":")
        ax.set_title(key if key != "accuracy" else "contrastive accuracy")
        ax.set_xlabel("step")
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)
