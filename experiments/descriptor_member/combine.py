"""The default recipe's ensemble with and without a descriptors member per seed, on a finished run's own
splits: each seed's descriptors member (`finetune.descriptor_head`) trains on that seed's training clips (the
same `split_train` as the run's members), and its validation and test probabilities join the run's members'.
A run that trained its descriptors members itself (this release's default) is read as it is. The last line
is a paired bootstrap (2,000 resamples of the test clips) of the UAR difference, with and without.

    python experiments/descriptor_member/combine.py --data runs/ravdess-heldout --run runs/rav-default \
        --out runs/rav-default-desc
"""
from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from finetune.config import FinetuneConfig
from finetune.descriptor_head import train_descriptors
from finetune.outputs import PROB_COLUMNS
from finetune.train import split_train
from w2v2.data.datasets import load_dataset


def uar(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean([(p[y == c] == c).mean() for c in np.unique(y)]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    data = load_dataset(args.data)
    if (args.run / "member_1_descriptors").is_dir():
        args.out = args.run
    for s in range(args.seeds):
        folder = args.out / f"member_{s + 1}_descriptors"
        if not (folder / "metrics.json").is_file():
            cfg = replace(FinetuneConfig(), seed=s, threads=1)
            train_items, val_items = split_train(data, cfg, None)
            train_descriptors(data, cfg, folder, train_items, val_items)
    labels = data.test_labels or {}
    metrics = json.loads((args.run / "metrics.json").read_text())
    names = [m["name"] for m in metrics["members"] if m["kind"] != "descriptors"]
    kind = {m["name"]: m["kind"] for m in metrics["members"]}

    def probs(folder: Path, split: str) -> pd.DataFrame:
        return pd.read_csv(folder / f"{split}_probs.csv")

    test = {n: probs(args.run / n, "test") for n in names}
    test |= {f"member_{s + 1}_descriptors": probs(args.out / f"member_{s + 1}_descriptors", "test")
             for s in range(args.seeds)}
    ids = test[names[0]]["id"]
    y = np.array([labels[i] for i in ids])

    def score(members: list[str]) -> float:
        return uar(y, sum(test[m][PROB_COLUMNS].to_numpy() for m in members).argmax(1))

    desc = [f"member_{s + 1}_descriptors" for s in range(args.seeds)]
    rows = {"networks (the run's ensemble)": names, "networks + descriptors": names + desc, "descriptors alone": desc}
    for k in ("finetune", "probe", "scratch"):
        rows[f"{k} members alone"] = [n for n in names if kind[n] == k]
    for title, members in rows.items():
        print(f"test UAR {score(members):.3f}  {title} ({len(members)} members)")
    for s in range(args.seeds):  # each seed's validation clips: its kinds with and without the descriptors
        mine = [n for n in names if re.fullmatch(rf"member_{s + 1}(_probe|_scratch)?", n)]
        val = {n: probs(args.run / n, "val") for n in mine}
        d = probs(args.out / f"member_{s + 1}_descriptors", "val")
        yv = val[mine[0]]["label"].to_numpy()
        base = sum(val[n][PROB_COLUMNS].to_numpy() for n in mine)
        print(f"seed {s}: validation UAR networks {uar(yv, base.argmax(1)):.3f}, with descriptors "
              f"{uar(yv, (base + d[PROB_COLUMNS].to_numpy()).argmax(1)):.3f}, descriptors alone "
              f"{uar(yv, d[PROB_COLUMNS].to_numpy().argmax(1)):.3f}")


    gen = np.random.default_rng(0)
    a = sum(test[m][PROB_COLUMNS].to_numpy() for m in names).argmax(1)
    b = sum(test[m][PROB_COLUMNS].to_numpy() for m in names + desc).argmax(1)
    diffs = []
    for _ in range(2000):
        i = gen.integers(0, len(y), len(y))
        diffs.append(uar(y[i], b[i]) - uar(y[i], a[i]))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    print(f"with descriptors minus without: {uar(y, b) - uar(y, a):+.3f} (paired bootstrap 95% {lo:+.3f} to "
          f"{hi:+.3f}; {np.mean(np.array(diffs) > 0):.0%} of resamples above 0)")


if __name__ == "__main__":
    main()
