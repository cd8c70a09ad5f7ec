"""Seconds of speech (silero-vad) in every labelled corpus clip: the detector may not drop real speech."""
import pandas as pd, torch
from pathlib import Path
from tqdm import tqdm
from w2v2.data.audio import load_audio
from w2v2.emotion.speech import speech_seconds
torch.set_num_threads(1)
rows = []
for corpus in ["ravdess", "ased", "indian-emospeech", "savee", "turev-db", "urdu"]:
    df = pd.read_csv(f"../shared/data/{corpus}-16k/labels.csv")
    for p in tqdm(df.path, desc=corpus, mininterval=30):
        w = load_audio(f"../shared/data/{corpus}-16k/{p}")
        rows.append({"corpus": corpus, "path": p, "seconds": w.numel() / 16000, "speech_s": speech_seconds(w)})
    pd.DataFrame(rows).to_csv("runs/travel/vad_corpora.csv", index=False)
print("done")
