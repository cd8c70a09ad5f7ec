"""Descriptors with the rhythm measured between the first and last sounding frame (leading and trailing
silence left out of the voiced/sounding shares, the rate and the pauses), for every labelled corpus clip
-> runs/travel/prosody_trim.pt; with the argument `now`, the descriptors as they are (no trimming) ->
runs/travel/prosody_now.pt, the like-for-like baseline. The research harness reads them with prosody=trim
and prosody=now."""
import sys
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

import w2v2.emotion.descriptors as D
from w2v2.data.audio import load_audio

torch.set_num_threads(1)
plain = D.rhythm


def trimmed(voiced: torch.Tensor, sounding: torch.Tensor) -> torch.Tensor:
    idx = sounding.nonzero()[:, 0]
    if len(idx) == 0:
        return plain(voiced, sounding)
    lo, hi = int(idx[0]), int(idx[-1]) + 1
    return plain(voiced[lo:hi], sounding[lo:hi])


NOW = sys.argv[1:] == ["now"]
if not NOW:
    D.rhythm = trimmed
X = []
for corpus in ["ravdess", "ased", "indian-emospeech", "savee", "turev-db", "urdu"]:
    df = pd.read_csv(f"../shared/data/{corpus}-16k/labels.csv")
    for p in tqdm(df.path, desc=corpus, mininterval=30):
        X.append(D.clip_descriptors(load_audio(f"../shared/data/{corpus}-16k/{p}")))
Path("runs/travel").mkdir(parents=True, exist_ok=True)
torch.save(torch.stack(X), f"runs/travel/prosody_{'now' if NOW else 'trim'}.pt")
