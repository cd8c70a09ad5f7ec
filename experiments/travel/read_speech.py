"""Descriptors of read speech (unlabeled corpora: LibriSpeech test-clean, speechocean762's adults, LJ Speech),
for the research harness's `read=...` rows: read speech as extra *neutral* training clips from many voices
and studios (the shipped model rarely says "neutral" on unseen corpora). -> runs/travel/read_desc.pt
(x: (n, 189) as the product computes them; meta: corpus, path, label 4, speaker); with the argument
`all`, every speechocean762 speaker (children too) -> runs/travel/read_desc_all.pt. Without it, also the
list of those clips (absolute paths, speaker) -> runs/travel/neutral_speech.csv, which the shipped model's
training command takes as --neutral-data.
Run from the project root: python experiments/travel/read_speech.py [all]"""
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

import sys

import w2v2.emotion.descriptors as D
from w2v2.data.audio import load_audio

torch.set_num_threads(1)
ROOT = Path("../shared/data")
rng = np.random.default_rng(0)
rows = []
libri = pd.read_csv(ROOT / "librispeech-test-clean-16k/manifest.tsv", sep="\t", dtype={"speaker": str})
for spk, d in libri.groupby("speaker"):  # all 40 speakers, 10 clips each
    for p in d.path.iloc[rng.permutation(len(d))[:10]]:
        rows.append(("librispeech", f"librispeech-test-clean-16k/{p}", f"libri:{spk}"))
ocean = pd.read_csv(ROOT / "speechocean762-16k/manifest.tsv", sep="\t", dtype={"speaker": str})
ALL = sys.argv[1:] == ["all"]  # every speaker of speechocean762 (children too), 10 clips each
adults = sorted(ocean[ocean.age >= 16].speaker.unique()) if not ALL else sorted(ocean.speaker.unique())
for spk in [adults[i] for i in rng.permutation(len(adults))[: None if ALL else 40]]:  # 40 adults, 10 clips each
    d = ocean[ocean.speaker == spk]
    for p in d.path.iloc[rng.permutation(len(d))[:10]]:
        rows.append(("speechocean", f"speechocean762-16k/{p}", f"ocean:{spk}"))
lj = pd.read_csv(ROOT / "ljspeech-16k/manifest.tsv", sep="\t")
for p in lj.path.iloc[rng.permutation(len(lj))[:20]]:
    rows.append(("ljspeech", f"ljspeech-16k/{p}", "lj:1"))
meta = pd.DataFrame(rows, columns=["corpus", "path", "speaker"]).assign(label=4)
x = torch.stack([D.clip_descriptors(load_audio(str(ROOT / p))) for p in tqdm(meta.path, mininterval=30)])
Path("runs/travel").mkdir(parents=True, exist_ok=True)
torch.save({"x": x, "meta": meta}, f"runs/travel/read_desc{'_all' if ALL else ''}.pt")
if not ALL:  # the same clips for the product: finetune train ... --neutral-data runs/travel/neutral_speech.csv
    pd.DataFrame({"path": [str((ROOT / p).resolve()) for p in meta.path], "speaker": meta.speaker}).to_csv(
        "runs/travel/neutral_speech.csv", index=False)
print(meta.groupby("corpus").speaker.nunique().to_string(), len(meta), "clips")
