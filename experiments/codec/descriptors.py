"""Descriptors of every labelled corpus clip with the log floor at FLOOR (w2v2.emotion.descriptors.FLOOR; shipped
1e-10), each clip as it is (`clean`) or after a round trip through a lossy codec (`mp3`: libsndfile's default,
about 25 kbps at 16 kHz; `opus`). -> runs/travel/prosody_f{FLOOR}_{CODEC}.pt, in the order of trim_rhythm.py,
which the research harness reads with prosody=f{FLOOR}_{CODEC} (and test_prosody=... for the unseen corpus
alone); with `clean`, also the read speech (read_speech.py's clips) -> runs/travel/read_desc_f{FLOOR}.pt
(read_file=_f{FLOOR}). Run from the project root: python experiments/codec/descriptors.py FLOOR CODEC"""
import io
import sys
from pathlib import Path

import pandas as pd
import soundfile as sf
import torch
from tqdm import tqdm

import w2v2.emotion.descriptors as D
from w2v2.data.audio import load_audio, resample

torch.set_num_threads(1)
FLOOR, CODEC = sys.argv[1], sys.argv[2]

FORMATS = {"mp3": dict(format="MP3"), "opus": dict(format="OGG", subtype="OPUS")}


def coded(wave: torch.Tensor) -> torch.Tensor:
    if CODEC == "clean":
        return wave
    buf = io.BytesIO()
    sf.write(buf, wave.numpy(), 16000, **FORMATS[CODEC])
    buf.seek(0)
    x, sr = sf.read(buf, dtype="float32", always_2d=True)
    return resample(torch.from_numpy(x.mean(1)), sr)  # Opus decodes at 48 kHz


X = []
for corpus in ["ravdess", "ased", "indian-emospeech", "savee", "turev-db", "urdu"]:
    df = pd.read_csv(f"../shared/data/{corpus}-16k/labels.csv")
    for p in tqdm(df.path, desc=corpus, mininterval=60):
        X.append(D.clip_descriptors(coded(load_audio(f"../shared/data/{corpus}-16k/{p}")), float(FLOOR)))
torch.save(torch.stack(X), f"runs/travel/prosody_f{FLOOR}_{CODEC}.pt")
if CODEC == "clean":
    rd = torch.load("runs/travel/read_desc.pt", weights_only=False)
    root = Path("../shared/data")
    x = torch.stack([D.clip_descriptors(load_audio(str(root / p)), float(FLOOR)) for p in tqdm(rd["meta"].path, mininterval=60)])
    torch.save({"x": x, "meta": rd["meta"]}, f"runs/travel/read_desc_f{FLOOR}.pt")
