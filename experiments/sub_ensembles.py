"""Test UAR of every kind-combination of a default run's members, from their saved test probabilities
(a run trained on a competition folder with test_labels.csv, e.g. experiments/ravdess_heldout.py):
    python experiments/sub_ensembles.py runs/RUN runs/ravdess-heldout/test_labels.csv
Each row averages the probabilities of the members it names (all seeds), as the recipe does."""
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

run, labels = Path(sys.argv[1]), pd.read_csv(sys.argv[2])
cols = [f"p_{e}" for e in ("angry", "fear", "sad", "disgust", "neutral", "happy")]
kinds = {"finetune": "", "probe": "_probe", "scratch": "_scratch"}
probs = {}
for folder in sorted(p for p in run.iterdir() if (p / "test_probs.csv").is_file()):
    df = pd.read_csv(folder / "test_probs.csv").merge(labels, on="id")
    probs[folder.name] = df[cols].to_numpy()
y = df["label"].to_numpy()


def uar(p: np.ndarray) -> float:
    pred = p.argmax(1)
    return float(np.mean([(pred[y == c] == c).mean() for c in np.unique(y)]))


print(f"{run}: {len(y)} test clips")
print("| members | test UAR |")
print("|---|---|")
for name, suffix in kinds.items():
    each = [uar(probs[f"member_{s}{suffix}"]) for s in (1, 2, 3)]
    print(f"| one {name} (3 seeds: mean ± sd; {', '.join(f'{u:.3f}' for u in each)}) | "
          f"{np.mean(each):.3f} ± {np.std(each, ddof=1):.3f} |")
for n in (1, 2, 3):
    for combo in itertools.combinations(kinds, n):
        names = [f"member_{s}{kinds[k]}" for s in (1, 2, 3) for k in combo]
        print(f"| 3 seeds × ({' + '.join(combo)}) | {uar(np.mean([probs[m] for m in names], 0)):.3f} |")
