"""RAVDESS as a competition folder: actors 1-18 train (the recipe picks its validation actors among them),
actors 19-24 test with their labels (test_labels.csv): the speaker-independent measure of the default
recipe (docs/recipe.md, docs/benchmark.md). Run from the project root:
    python experiments/ravdess_heldout.py ../shared/data/ravdess-16k runs/ravdess-heldout
    python -m finetune train --data runs/ravdess-heldout --run runs/RUN
"""
import sys
from pathlib import Path

import pandas as pd

source, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
df = pd.read_csv(source / "labels.csv", dtype={"speaker": str})
df["id"] = [Path(p).stem for p in df.path]
df["path"] = [str(source / p) for p in df.path]
test = df.speaker.astype(int) >= 19
out.mkdir(parents=True, exist_ok=True)
df[~test][["id", "path", "label", "speaker"]].to_csv(out / "train.csv", index=False)
df[test][["id", "path"]].to_csv(out / "test.csv", index=False)
df[test][["id", "label"]].to_csv(out / "test_labels.csv", index=False)
df[test][["id"]].assign(label=0).to_csv(out / "sample_submission.csv", index=False)
print(f"{out}: {int((~test).sum())} training clips (actors 1-18), {int(test.sum())} test clips (actors 19-24)")
