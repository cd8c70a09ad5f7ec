"""Per-set standardisation on a recording set that holds only some emotions (issue 32's Urdu observation):
each unseen corpus's clips of every pair of its classes taken as one set, standardised by its own
statistics (as `--normalise set` does), six-way answers scored over the two classes present; against the
set's statistics reweighted to balance its predicted classes (`balanced`) and against each clip standardised
by the training pool's statistics (heads trained so: `clip alone`); the whole corpus as one set too.
Run from the project root: python experiments/travel/skew.py [ROUNDS]"""
import itertools
import sys

import numpy as np
import torch

sys.path.insert(0, "experiments/travel")
from loco import CORPORA, SHIP, balanced, class_mask, group_standardise, load, normed, sample_weights, train, uar  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 1


meta, _, _ = load("small")
x_all = torch.load("runs/travel/prosody2.pt")
spk, corp = meta.speaker.values, meta.corpus.values
rows = []
for test in CORPORA:
    tr = np.flatnonzero(np.isin(corp, [c for c in SHIP if c != test])); te = np.flatnonzero(corp == test)
    xtr, _ = normed(x_all, tr, te, "spk_train_corpus_test", spk, corp)
    mtr = meta.iloc[tr].reset_index(drop=True)
    y, mask, w = torch.as_tensor(mtr.label.to_numpy().copy()), class_mask(mtr), sample_weights(mtr)
    classes = sorted(set(meta.label.values[te]))
    gtr, _ = normed(x_all, tr, te, "global", spk, corp)  # a clip alone: the training pool's statistics
    mu, sd = x_all[tr].mean(0), x_all[tr].std(0) + 1e-5
    for seed in range(3):
        net = train(xtr, y, mask, w, 0, seed, 30, 1e-2)
        lone = train(gtr, y, mask, w, 0, seed, 30, 1e-2)
        with torch.no_grad():
            for pair in [tuple(classes)] + list(itertools.combinations(classes, 2)):
                idx = te[np.isin(meta.label.values[te], pair)]
                raw = x_all[idx]
                plain = net(group_standardise(raw, np.zeros(len(idx))))
                ys = meta.label.values[idx]
                for how, logits in (("per set", plain), ("balanced", balanced(net, raw, plain, ROUNDS)),
                                    ("clip alone", lone((raw - mu) / sd))):
                    rows.append(dict(test=test, seed=seed, pair=len(pair) == 2, how=how,
                                     uar=uar(ys, logits.argmax(1).numpy(), list(pair))[0]))
import pandas as pd  # noqa: E402

df = pd.DataFrame(rows)
t = df.groupby(["pair", "how", "test"]).uar.mean().unstack("test")[CORPORA]
t["mean"] = t.mean(axis=1)
print(f"balanced: {ROUNDS} round(s); six-way answers, UAR over the classes in the set; 3 seeds")
print("pair=False: the whole corpus as one set; pair=True: mean over every two-class set of the corpus")
print(t.round(3).to_string())
