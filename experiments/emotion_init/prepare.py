"""Data for issue 32 item 6: does a multi-corpus emotion backbone beat pretrained:small as `--init`?

Writes under runs/emotion-init/:
- multi/labels.csv: RAVDESS + ASED + the Indian set (the corpora that may train shipped weights) as one CSV
  `path,label,speaker,corpus`, speakers prefixed by their corpus: the backbone is one fine-tune on it,
  each corpus training on its own classes (finetune.train.corpus_targets);
- savee/, turev-db/, urdu/: competition folders of a corpus the backbone never heard, the last quarter of its
  speakers (sorted) as the labelled test set (test_labels.csv), the others to train on.

  python experiments/emotion_init/prepare.py [--shared ../shared/data] [--out runs/emotion-init]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

SHIPPABLE = {"ravdess": "ravdess-16k", "ased": "ased-16k", "indian": "indian-emospeech-16k"}
TARGETS = {"savee": "savee-16k", "turev-db": "turev-db-16k", "urdu": "urdu-16k"}


def corpus_frame(folder: Path, name: str) -> pd.DataFrame:
    df = pd.read_csv(folder / "labels.csv", dtype={"speaker": str})
    return df.assign(path=[str((folder / p).resolve()) for p in df.path], speaker=[f"{name}-{s}" for s in df.speaker],
                     corpus=name)


def held_out_folder(df: pd.DataFrame, out: Path) -> list[str]:
    """A competition folder: the last quarter of the speakers (at least one) labelled test, the rest train."""
    speakers = sorted(df.speaker.unique())
    test = speakers[len(speakers) - max(1, len(speakers) // 4):]
    df = df.assign(id=[f"clip_{i:05d}" for i in range(len(df))])
    out.mkdir(parents=True, exist_ok=True)
    df[~df.speaker.isin(test)][["id", "path", "label", "speaker"]].to_csv(out / "train.csv", index=False)
    held = df[df.speaker.isin(test)]
    held[["id", "path"]].to_csv(out / "test.csv", index=False)
    held[["id"]].assign(label=0).to_csv(out / "sample_submission.csv", index=False)
    held[["id", "label"]].to_csv(out / "test_labels.csv", index=False)
    return test


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shared", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path("runs/emotion-init"))
    args = p.parse_args()
    multi = pd.concat([corpus_frame(args.shared / f, n) for n, f in SHIPPABLE.items()], ignore_index=True)
    (args.out / "multi").mkdir(parents=True, exist_ok=True)
    multi[["path", "label", "speaker", "corpus"]].to_csv(args.out / "multi" / "labels.csv", index=False)
    print(f"multi: {len(multi)} clips, {multi.speaker.nunique()} speakers, corpora {sorted(SHIPPABLE)}")
    for name, folder in TARGETS.items():
        df = pd.read_csv(args.shared / folder / "labels.csv", dtype={"speaker": str})
        df = df.assign(path=[str((args.shared / folder / p).resolve()) for p in df.path])
        test = held_out_folder(df, args.out / name)
        print(f"{name}: {len(df)} clips, test speakers {test}")


if __name__ == "__main__":
    main()
