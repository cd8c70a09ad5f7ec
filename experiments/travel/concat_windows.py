"""Long recordings: 8 s windows made of several clips of one speaker in one emotion (as a timeline's
windows of a long recording hold several utterances and the pauses between them), for every labelled
corpus: each speaker's clips of each emotion shuffled and joined until 8 s, cut at 8 s.
-> runs/travel/concat_meta.pt (corpus, label, speaker of each window) and runs/travel/concat_trim.pt
(their descriptors). loco.py reads them with concat_test=1 (score the unseen corpus's windows) and
concat_train=1 (the training corpora's windows join the training clips).

  python experiments/travel/concat_windows.py"""
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

import w2v2.emotion.descriptors as D
from w2v2.data.audio import load_audio

torch.set_num_threads(1)
CORPORA = ["ravdess", "ased", "indian-emospeech", "savee", "turev-db", "urdu"]
WINDOW = 8 * 16000
rng = np.random.default_rng(0)
rows, X = [], []
for corpus in CORPORA:
    df = pd.read_csv(f"../shared/data/{corpus}-16k/labels.csv")
    for (speaker, label), g in tqdm(df.groupby(["speaker", "label"]), desc=corpus, mininterval=30):
        paths = list(g.path)
        rng.shuffle(paths)
        parts, n = [], 0
        for p in paths:
            parts.append(load_audio(f"../shared/data/{corpus}-16k/{p}"))
            n += parts[-1].numel()
            if n >= WINDOW:
                X.append(D.clip_descriptors(torch.cat(parts)[:WINDOW]))
                rows.append(dict(corpus=corpus, label=int(label), speaker=f"{corpus}:{speaker}", clips=len(parts)))
                parts, n = [], 0
torch.save(pd.DataFrame(rows), "runs/travel/concat_meta.pt")
torch.save(torch.stack(X), "runs/travel/concat_trim.pt")
print("windows", len(rows), pd.DataFrame(rows).groupby("corpus").size().to_dict())
