"""UAR, accuracy, bootstrap interval and recall per class of a run's members averaged with descriptors members
kept in another folder (none: a folder without them), with equal votes or each kind's weight (KIND=W ...):

    python experiments/descriptor_member/bootstrap.py DATA RUN DESCRIPTORS_FOLDER [finetune=0.2 probe=0.2 ...]
"""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from finetune.analysis import bootstrap_uar
from finetune.metrics import classification_metrics
from finetune.outputs import PROB_COLUMNS
from w2v2.data.datasets import load_dataset

data = load_dataset(sys.argv[1])
labels = data.test_labels or {}
run, extra = Path(sys.argv[2]), Path(sys.argv[3])
kinds = {m["name"]: m["kind"] for m in json.loads((run / "metrics.json").read_text())["members"]}
kinds |= {p.parent.name: "descriptors" for p in sorted(extra.glob("member_*_descriptors/test_probs.csv"))}
weights = {k: float(w) for k, _, w in (a.partition("=") for a in sys.argv[4:])}
frames = [pd.read_csv((extra if k == "descriptors" else run) / n / "test_probs.csv") for n, k in kinds.items()]
p = sum(weights.get(k, 1.0 if not weights else 0.0) * f[PROB_COLUMNS].to_numpy()
        for f, k in zip(frames, kinds.values(), strict=True))
y = [labels[i] for i in frames[0].id]
m = classification_metrics(y, p.argmax(1).tolist())
low, high = bootstrap_uar(np.asarray(m["confusion_matrix"]))
print(f"{len(frames)} members: UAR {m['uar']:.3f} acc {m['accuracy']:.3f} bootstrap 95% {low:.3f}-{high:.3f} recall",
      {k: round(v, 2) for k, v in m["per_class_recall"].items() if v is not None})
