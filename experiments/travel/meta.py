"""The labelled corpora's clip list in the research harness's order -> runs/travel/feats_meta.pt (what loco.py
and logmel.py read as `meta`: corpus, path, label, speaker "corpus:id"; no wav2vec 2.0 features, w2v=0 rows only).
extract.py writes the same rows with features; this rebuilds the list alone on a fresh checkout.
Run from the project root: python experiments/travel/meta.py"""
from pathlib import Path

import pandas as pd
import soundfile as sf
import torch

CORPORA = ["ravdess", "ased", "indian-emospeech", "savee", "turev-db", "urdu"]
ROOT = Path("../shared/data")
rows = []
for corpus in CORPORA:
    df = pd.read_csv(ROOT / f"{corpus}-16k" / "labels.csv")
    for r in df.itertuples():
        info = sf.info(str(ROOT / f"{corpus}-16k" / r.path))
        rows.append(dict(corpus=corpus, path=str(r.path), label=int(r.label), speaker=f"{corpus}:{r.speaker}",
                         seconds=info.frames / info.samplerate))
Path("runs/travel").mkdir(parents=True, exist_ok=True)
n = len(rows)
torch.save(dict(meta=pd.DataFrame(rows), mean=torch.zeros(n, 1, 1), std=torch.zeros(n, 1, 1)), "runs/travel/feats_meta.pt")
print("clips", n)
