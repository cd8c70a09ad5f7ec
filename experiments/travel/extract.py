"""Per-clip pooled features of every labelled corpus, for leave-one-corpus-out experiments.
Saves runs/travel/feats_<name>.pt: dict(meta=DataFrame rows, mean=(n,L,d), std=(n,L,d)).
Usage: python experiments/travel/extract.py NAME CKPT_SPEC [threads]"""
import sys, time
from pathlib import Path
import pandas as pd
import torch
from tqdm import tqdm
from w2v2.data.audio import load_audio
from w2v2.checkpoint import load_model

CORPORA = ["ravdess", "ased", "indian-emospeech", "savee", "turev-db", "urdu"]
ROOT = Path("../shared/data")
name, spec = sys.argv[1], sys.argv[2]
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
from w2v2.training.runs import load_init
m = load_init(spec, None)
backbone = m.backbone if hasattr(m, "backbone") else m
backbone.eval()
rows, means, stds = [], [], []
for corpus in CORPORA:
    df = pd.read_csv(ROOT / f"{corpus}-16k" / "labels.csv")
    for r in tqdm(df.itertuples(), total=len(df), desc=corpus, mininterval=30):
        wave = load_audio(ROOT / f"{corpus}-16k" / r.path)
        w = wave[: 16000 * 20]
        with torch.no_grad():
            hs = backbone(w[None], output_hidden_states=True).hidden_states
        h = torch.stack([x[0] for x in hs])  # (L, t, d)
        means.append(h.mean(1)); stds.append(h.std(1) if h.shape[1] > 1 else torch.zeros_like(h[:, 0]))
        rows.append(dict(corpus=corpus, path=str(r.path), label=int(r.label), speaker=f"{corpus}:{r.speaker}",
                         seconds=wave.numel() / 16000, rms=float(wave.pow(2).mean().sqrt())))
torch.save(dict(meta=pd.DataFrame(rows), mean=torch.stack(means), std=torch.stack(stds)),
           f"runs/travel/feats_{name}.pt")
print("done", len(rows))
