"""The shipped emotion-ravdess ensemble's probabilities on every clip of the five other corpora (before)."""
import torch, pandas as pd
from pathlib import Path
from finetune.ensemble import ensemble_probs, members
from finetune.model import checkpoint_spec
from w2v2.data.audio import load_audio
torch.set_num_threads(1)
ROOT = Path("../shared/data")
out = []
ck = members([checkpoint_spec("pretrained:emotion-ravdess")])
for corpus in ["ased", "indian-emospeech", "savee", "turev-db", "urdu"]:
    df = pd.read_csv(ROOT / f"{corpus}-16k" / "labels.csv")
    waves = [load_audio(ROOT / f"{corpus}-16k" / p) for p in df.path]
    mean, _ = ensemble_probs(ck, waves)
    df["corpus"] = corpus
    for i in range(6):
        df[f"p{i}"] = mean[:, i].numpy()
    out.append(df); print(corpus, flush=True)
    pd.concat(out).to_csv("runs/travel/before_probs.csv", index=False)
