"""The shipped pretrained:emotion on the three evaluation-only corpora (never in its weights), through the
product's one path (EmotionRecognizer.clip_probs, as `evaluate` scores a corpus), in each normalisation: the
share of each six-way answer and the recall of each class -- the figures the team reported for the previous
model ("sad" to half the clips, never "neutral"; experiments/travel/results/before.txt).
Run from the project root: python experiments/travel/answers.py > experiments/travel/results/answers.txt"""
from pathlib import Path

import pandas as pd
import torch

from w2v2 import EmotionRecognizer
from w2v2.data.audio import load_audio
from w2v2.data.labels import EMOTIONS

torch.set_num_threads(1)
ROOT = Path("../shared/data")
rec = EmotionRecognizer.from_pretrained()
for corpus in ["savee", "turev-db", "urdu"]:
    df = pd.read_csv(ROOT / f"{corpus}-16k" / "labels.csv")
    waves = [load_audio(ROOT / f"{corpus}-16k" / p) for p in df.path]
    speakers = [f"{corpus}:{s}" for s in df.speaker]
    for normalise in ("speaker", "set", "clip"):
        probs, _ = rec.clip_probs(waves, normalise=normalise, speakers=speakers)
        answer = probs.argmax(1).numpy()
        shares = pd.Series(answer).value_counts(normalize=True).reindex(range(6), fill_value=0.0)
        recall = {EMOTIONS[c]: float((answer[df.label.values == c] == c).mean()) for c in sorted(set(df.label))}
        print(f"{corpus} ({normalise}): six-way answers " + ", ".join(f"{EMOTIONS[i]} {shares[i]:.2f}" for i in range(6))
              + "; six-way recall " + ", ".join(f"{k} {v:.2f}" for k, v in recall.items()), flush=True)
