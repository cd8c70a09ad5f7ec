"""Does a descriptors head trained on a user's own clips hold up where the networks fail? In-corpus, speaker-
independent: each competition folder's train clips train the travelling model's heads (`w2v2.emotion.travel.fit`,
per-speaker standardisation where train.csv names speakers), its labelled test clips are scored as one
recording set (as `submit` sees a test folder), over the corpus's own classes, 3 seeds.

    python experiments/descriptor_member/heldout.py runs/ravdess-heldout runs/emotion-init/savee ...
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from finetune.travel import Corpus, descriptors, groups_of
from w2v2.data.datasets import load_dataset
from w2v2.emotion.travel import TravelConfig, fit


def uar(y: list[int], p: list[int]) -> float:
    y_a, p_a = np.asarray(y), np.asarray(p)
    return float(np.mean([(p_a[y_a == c] == c).mean() for c in np.unique(y_a)]))


def main() -> None:
    torch.set_num_threads(1)
    for folder in map(Path, sys.argv[1:]):
        data = load_dataset(folder)
        labels = data.test_labels or {}
        test_items = [replace(it, label=labels[it.id]) for it in data.test]
        train_c, test_c = Corpus(folder.name, data.train), Corpus(folder.name + "-test", test_items)
        (train_c, test_c), feats = descriptors([train_c, test_c], folder / "descriptors.pt")
        classes = train_c.classes
        y = [int(it.label) for it in test_c.items]  # type: ignore[arg-type]
        rows = []
        for seed in range(3):
            cfg = replace(TravelConfig(), seed=seed * 3)
            model = fit(feats[train_c.name], [int(it.label) for it in train_c.items],  # type: ignore[arg-type]
                        [train_c.name] * len(train_c.items), groups_of(train_c), cfg)
            out = {}
            for mode, groups in (("set", ["set"] * len(y)), ("clip", None)):
                probs = model.probs(feats[test_c.name], groups)[:, classes]
                out[mode] = uar(y, [classes[i] for i in probs.argmax(1).tolist()])
            rows.append(out)
        mean = {k: np.mean([r[k] for r in rows]) for k in rows[0]}
        sd = {k: np.std([r[k] for r in rows]) for k in rows[0]}
        print(f"{folder.name}: {len(train_c.items)} train clips, {len(y)} test clips, {len(classes)} classes; "
              + ", ".join(f"{k} {mean[k]:.3f} ± {sd[k]:.3f}" for k in mean), flush=True)


if __name__ == "__main__":
    main()
