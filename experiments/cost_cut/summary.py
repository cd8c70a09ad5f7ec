"""Cheaper members swapped into the default run's ensemble (runs/rav-default, RAVDESS actors 1-18 -> 19-24):
    python experiments/cost_cut/summary.py [ARM ...]   (arms: runs/cost-cut/NAME from arms.sh)
Each arm retrained one kind's three seeds with the same seeds and validation actors (checked); the
ensemble row averages the nine members' test probabilities as the recipe does, the arm's in place of
the default's."""
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

BASE, LABELS = Path("runs/rav-default"), pd.read_csv("runs/ravdess-heldout/test_labels.csv")
COLS = [f"p_{e}" for e in ("angry", "fear", "sad", "disgust", "neutral", "happy")]
SUFFIX = {"finetune": "", "probe": "_probe", "scratch": "_scratch"}


def probs(folder: Path, split: str = "test") -> pd.DataFrame:
    return pd.read_csv(folder / f"{split}_probs.csv").merge(LABELS, on="id") if split == "test" else \
        pd.read_csv(folder / f"{split}_probs.csv")


def uar(p: np.ndarray, y: np.ndarray) -> float:
    pred = p.argmax(1)
    return float(np.mean([(pred[y == c] == c).mean() for c in np.unique(y)]))


def cpu_seconds(log: Path) -> float | None:
    m = re.search(r"([\d.]+) s wall, ([\d.]+)\+([\d.]+) CPU-s", log.read_text()) if log.is_file() else None
    return float(m.group(2)) + float(m.group(3)) if m else None


members = {f"member_{s}{x}": BASE / f"member_{s}{x}" for s in (1, 2, 3) for x in SUFFIX.values()}
y = probs(BASE / "member_1")["label"].to_numpy()
print(f"default (runs/rav-default): ensemble {uar(np.mean([probs(f)[COLS].to_numpy() for f in members.values()], 0), y):.3f}"
      f"; 3930 CPU-s for all nine members")
for arm in sys.argv[1:] or sorted(p.name for p in Path("runs/cost-cut").iterdir() if p.is_dir()):
    run = Path("runs/cost-cut") / arm
    if not (run / "metrics.json").is_file():
        print(f"{arm}: not finished"); continue
    swapped = dict(members)
    own = sorted(p for p in run.iterdir() if (p / "test_probs.csv").is_file())
    each = []
    for folder in own:
        base = BASE / folder.name
        assert set(probs(folder, "val")["id"]) == set(probs(base, "val")["id"]), f"{folder}: other validation clips"
        swapped[folder.name] = folder
        each.append((uar(probs(folder)[COLS].to_numpy(), y), uar(probs(base)[COLS].to_numpy(), y)))
    ens = uar(np.mean([probs(f)[COLS].to_numpy() for f in swapped.values()], 0), y)
    mine = ", ".join(f"{a:.3f}" for a, _ in each)
    theirs = ", ".join(f"{b:.3f}" for _, b in each)
    print(f"{arm}: members {mine} (default's {theirs}); ensemble with them {ens:.3f}; "
          f"{cpu_seconds(Path('runs/cost-cut') / f'{arm}.log'):.0f} CPU-s for the {len(own)} members")
