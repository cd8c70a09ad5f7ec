"""The table of issue 32 item 6 from the runs of arms.sh: test UAR (mean ± sd over 3 seeds) of the fine-tunes,
the probes and the ensemble of both, per held-out corpus and init; and the shipped travelling model on the same
test clips, trained on none of the corpus (`finetune evaluate ... --normalise set`).

  python experiments/emotion_init/summary.py > experiments/results/emotion_init.txt
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

RUNS = Path("runs/emotion-init")
INITS = {"small": "pretrained:small", "multi": "multi-corpus emotion backbone",
         "ravdess": "RAVDESS-fine-tuned backbone (emotion-ravdess member_1)"}
CORPORA = ("savee", "turev-db", "urdu")


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main() -> None:
    backbone = json.loads((RUNS / "backbone" / "metrics.json").read_text()) if (RUNS / "backbone" / "metrics.json").is_file() else None
    if backbone:
        print(f"backbone: validation UAR {backbone['validation']['uar']:.3f} on {backbone['validation']['n']} clips "
              f"of unseen speakers of RAVDESS + ASED + Indian, {backbone.get('train_seconds', 0) / 60:.0f} min")
    print("| held-out corpus | init | fine-tune test UAR | probe test UAR | ensemble test UAR | seeds (fine-tune) |")
    print("|---|---|---|---|---|---|")
    for corpus in CORPORA:
        for key, name in INITS.items():
            path = RUNS / f"{corpus}-{key}" / "metrics.json"
            if not path.is_file():
                continue
            m = json.loads(path.read_text())
            by = {kind: [x["test"]["uar"] for x in m["members"] if x["kind"] == kind] for kind in ("finetune", "probe")}
            seeds = " / ".join(f"{u:.3f}" for u in by["finetune"])
            print(f"| {corpus} ({m['test']['n']} test clips) | {name} | {spread(by['finetune'])} | "
                  f"{spread(by['probe'])} | {m['test']['uar']:.3f} | {seeds} |")
        travel = RUNS / f"{corpus}-travel.json"
        if travel.is_file():  # finetune evaluate --data RUNS/CORPUS --normalise set --out RUNS/CORPUS-travel.json
            t = json.loads(travel.read_text())
            own = t.get("own_classes", t)
            print(f"| {corpus} ({t['n']} test clips) | none: pretrained:emotion as shipped, per set | | | "
                  f"{t['uar']:.3f} (six-way); {own['uar']:.3f} (its own classes) | |")


if __name__ == "__main__":
    main()
