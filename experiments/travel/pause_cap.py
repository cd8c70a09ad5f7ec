"""Rhythm with long pauses cut short: every run of non-sounding frames inside the speech longer than CAP
frames is shortened to CAP before the six rhythm descriptors are measured. A pause between two utterances
of a long recording (or an 8 s window holding two sentences) is not the speaker's rhythm, and it had
moved the mean pause of a repeated neutral RAVDESS clip by 6 sd of the training pool.

  python experiments/travel/pause_cap.py CAP   ->  runs/travel/prosody_cap{CAP}.pt  (loco.py prosody=capCAP)
  python experiments/travel/pause_cap.py CAP consistency  ->  the lone-clip answers of clips alone against
      the same clips repeated to fill an 8 s window, heads fitted on the three shippable corpora
      (CAP 0: the shipped rhythm)"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

import w2v2.emotion.descriptors as D
from w2v2.data.audio import load_audio
from w2v2.emotion.travel import TravelConfig, fit

torch.set_num_threads(1)
CAP = int(sys.argv[1])
plain = D.rhythm
CORPORA = ["ravdess", "ased", "indian-emospeech", "savee", "turev-db", "urdu"]


def capped(voiced: torch.Tensor, sounding: torch.Tensor) -> torch.Tensor:
    idx = sounding.nonzero()[:, 0]
    if len(idx) == 0:
        return plain(voiced, sounding)
    voiced, sounding = voiced[int(idx[0]):int(idx[-1]) + 1], sounding[int(idx[0]):int(idx[-1]) + 1]
    keep = torch.ones_like(sounding)
    run = 0
    for i, s in enumerate(sounding.tolist()):
        run = 0 if s else run + 1
        if run > CAP:
            keep[i] = False
    return plain(voiced[keep], sounding[keep])


if CAP:
    D.rhythm = capped
if sys.argv[2:] == ["consistency"]:
    feats, alone, tiled, meta = [], [], [], []
    for corpus in CORPORA:
        df = pd.read_csv(f"../shared/data/{corpus}-16k/labels.csv")
        test = corpus not in ("ravdess", "ased", "indian-emospeech")
        for i, r in enumerate(tqdm(df.itertuples(), total=len(df), desc=corpus, mininterval=30)):
            if test and i % 4:
                continue  # every 4th clip of each evaluation-only corpus
            w = load_audio(f"../shared/data/{corpus}-16k/{r.path}")
            if test:
                alone.append(D.clip_descriptors(w))
                reps = int(np.ceil(8 * 16000 / max(w.numel(), 1)))
                tiled.append(D.clip_descriptors(w.repeat(reps)[: 8 * 16000]))
            else:
                feats.append(D.clip_descriptors(w))
                meta.append((int(r.label), corpus, f"{corpus}:{r.speaker}"))
    y, c, s = zip(*meta, strict=True)
    model = fit(torch.stack(feats), list(y), list(c), list(s), TravelConfig())
    a, t = model.probs(torch.stack(alone)).argmax(1), model.probs(torch.stack(tiled)).argmax(1)
    print(f"cap {CAP} frames: {int((a != t).sum())} of {len(a)} lone answers change when the clip is repeated "
          f"to fill 8 s ({float((a != t).float().mean()):.1%}; SAVEE, TurEV-DB, Urdu, every 4th clip)")
else:
    X = []
    for corpus in CORPORA:
        df = pd.read_csv(f"../shared/data/{corpus}-16k/labels.csv")
        for p in tqdm(df.path, desc=corpus, mininterval=30):
            X.append(D.clip_descriptors(load_audio(f"../shared/data/{corpus}-16k/{p}")))
    Path("runs/travel").mkdir(parents=True, exist_ok=True)
    torch.save(torch.stack(X), f"runs/travel/prosody_cap{CAP}.pt")
