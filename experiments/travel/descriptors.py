"""Descriptors (w2v2.emotion.descriptors) of every labelled corpus clip -> runs/travel/prosody2.pt."""
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from w2v2.data.audio import load_audio
from w2v2.emotion.descriptors import clip_descriptors

torch.set_num_threads(1)
CORPORA = ["ravdess", "ased", "indian-emospeech", "savee", "turev-db", "urdu"]
ROOT = Path("../shared/data")
X = []
for corpus in CORPORA:
    df = pd.read_csv(ROOT / f"{corpus}-16k" / "labels.csv")
    for p in tqdm(df.path, desc=corpus, mininterval=30):
        X.append(clip_descriptors(load_audio(ROOT / f"{corpus}-16k" / p)))
Path("runs/travel").mkdir(parents=True, exist_ok=True)
torch.save(torch.stack(X), "runs/travel/prosody2.pt")
