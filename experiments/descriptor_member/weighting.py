"""How to average members that travel unequally: equal weights, each member's temperature fitted on its own
validation clips (Guo et al. 2017), or one weight per kind fitted on the seeds' pooled validation clips.
Test UAR of each, from a finished run (its members' val_probs.csv and test_probs.csv) and the test labels.

    python experiments/descriptor_member/weighting.py DATA RUN [RUN_OF_DESCRIPTORS]
"""
from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from finetune.outputs import PROB_COLUMNS
from w2v2.data.datasets import load_dataset


def uar(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean([(p[y == c] == c).mean() for c in np.unique(y)]))


def tempered(p: np.ndarray, t: float) -> np.ndarray:
    z = np.log(np.clip(p, 1e-8, 1)) / t
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-8, 1)).mean())


def main() -> None:
    data = load_dataset(sys.argv[1])
    run = Path(sys.argv[2])
    extra = Path(sys.argv[3]) if len(sys.argv) > 3 else run
    members = json.loads((run / "metrics.json").read_text())["members"]
    rows = [(m["name"], m["kind"], m["seed"], run) for m in members if m["kind"] != "descriptors"]
    rows += [(f"member_{s + 1}_descriptors", "descriptors", s, extra) for s in sorted({m["seed"] for m in members})]
    labels = data.test_labels or {}
    val = {n: pd.read_csv(f / n / "val_probs.csv") for n, _, _, f in rows}
    test = {n: pd.read_csv(f / n / "test_probs.csv") for n, _, _, f in rows}
    y_test = np.array([labels[i] for i in test[rows[0][0]].id])
    kinds = sorted({k for _, k, _, _ in rows})
    seeds = sorted({s for _, _, s, _ in rows})
    vp = {n: df[PROB_COLUMNS].to_numpy() for n, df in val.items()}
    tp = {n: df[PROB_COLUMNS].to_numpy() for n, df in test.items()}
    vy = {n: df["label"].to_numpy() for n, df in val.items()}

    def score(weight: dict[str, float], temp: dict[str, float]) -> float:
        p = sum(weight[k] * tempered(tp[n], temp[n]) for n, k, _, _ in rows)
        return uar(y_test, p.argmax(1))

    ones = dict.fromkeys(test, 1.0)
    equal = dict.fromkeys(kinds, 1.0)
    print(f"equal weights: {score(equal, ones):.3f}")
    grid = np.exp(np.linspace(np.log(0.25), np.log(20), 60))
    temp = {n: float(grid[np.argmin([nll(tempered(vp[n], t), vy[n]) for t in grid])]) for n in test}
    print(f"each member tempered on its validation clips: {score(equal, temp):.3f}  (T: "
          + ", ".join(f"{n} {t:.2f}" for n, t in temp.items()) + ")")
    def fitted(allowed: list[str]) -> dict[str, float]:
        best, best_w = np.inf, equal
        for w in itertools.product(np.arange(0, 1.01, 0.1), repeat=len(allowed)):
            if abs(sum(w) - 1) > 1e-6:
                continue
            weight = dict.fromkeys(kinds, 0.0) | dict(zip(allowed, w, strict=True))
            loss = 0.0
            for s in seeds:
                mine = [(n, k) for n, k, seed, _ in rows if seed == s]
                p = sum(weight[k] * vp[n] for n, k in mine) + 1e-12
                loss += nll(p / p.sum(1, keepdims=True), vy[mine[0][0]])
            if loss < best:
                best, best_w = loss, weight
        return best_w

    best_w = fitted(kinds)
    print(f"one weight per kind, fitted on the seeds' validation clips: {score(best_w, ones):.3f}  ("
          + ", ".join(f"{k} {w:.1f}" for k, w in best_w.items()) + ")")
    print(f"the same, tempered members: {score(best_w, temp):.3f}")
    nets = fitted([k for k in kinds if k != "descriptors"])
    print(f"networks only (descriptors 0), equal: {score(dict(equal, descriptors=0.0), ones):.3f}; their weights "
          f"fitted: {score(nets, ones):.3f}  (" + ", ".join(f"{k} {w:.1f}" for k, w in nets.items()) + ")")


if __name__ == "__main__":
    main()
