"""The shipped model before and after the log floor, on two evaluation-only corpora (SAVEE, Urdu) as recorded and after a
low-bitrate MP3 round trip (libsndfile's default, about 25 kbps at 16 kHz), through the product's own path
(EmotionRecognizer.clip_scores): UAR over each corpus's classes, per speaker, per set and clip by clip.
Run from the project root: python experiments/codec/product_mp3.py BEFORE AFTER  (model folders)"""
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from w2v2 import EmotionRecognizer
from w2v2.data.audio import load_audio, resample
from w2v2.data.labels import EMOTIONS

torch.set_num_threads(2)
MODELS = {"before": sys.argv[1], "after": sys.argv[2]}
CORPORA = ["savee-16k", "urdu-16k"]


def mp3(wave: torch.Tensor) -> torch.Tensor:
    buf = io.BytesIO()
    sf.write(buf, wave.numpy(), 16000, format="MP3")
    buf.seek(0)
    x, sr = sf.read(buf, dtype="float32", always_2d=True)
    return resample(torch.from_numpy(x.mean(1)), sr)[: wave.numel()]


def uar(labels: np.ndarray, probs: torch.Tensor) -> float:
    classes = sorted(set(labels))
    pred = np.array(classes)[probs[:, classes].argmax(-1).numpy()]
    return float(np.mean([(pred[labels == c] == c).mean() for c in classes]))


rows = []
for corpus in CORPORA:
    df = pd.read_csv(f"../shared/data/{corpus}/labels.csv")
    labels = np.array([EMOTIONS.index(x) if isinstance(x, str) and x in EMOTIONS else int(x) for x in df.label])
    clean = [load_audio(f"../shared/data/{corpus}/{p}") for p in df.path]
    for version, waves in (("as recorded", clean), ("MP3", [mp3(w) for w in clean])):
        for name, folder in MODELS.items():
            rec = EmotionRecognizer.from_pretrained(folder)
            for mode, speakers in (("speaker", list(df.speaker.astype(str))), ("set", None), ("clip", None)):
                probs = rec.clip_scores(waves, normalise=mode, speakers=speakers).probs
                rows.append({"corpus": corpus.removesuffix("-16k"), "audio": version, "model": name, "mode": mode,
                             "uar": uar(labels, probs)})
        print(pd.DataFrame(rows).tail(6).to_string(index=False), flush=True)
out = pd.DataFrame(rows)
table = out.pivot_table(index=["mode", "audio"], columns="model", values="uar", aggfunc="mean", sort=False)
print("\nmean UAR of the two corpora:")
print(table.round(3).to_string())
