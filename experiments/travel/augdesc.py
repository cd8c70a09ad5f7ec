"""Descriptors of channel-augmented copies: one random channel per speaker (a new studio for each)."""
import math, random
from pathlib import Path
import pandas as pd, torch, torchaudio.functional as AF
from tqdm import tqdm
from w2v2.data.audio import load_audio
from w2v2.emotion.descriptors import clip_descriptors
torch.set_num_threads(1)
CORPORA = ["ravdess", "ased", "indian-emospeech", "savee", "turev-db", "urdu"]
ROOT = Path("../shared/data")

def channel(rng):
    kind = rng.choice(["phone", "noise", "reverb", "lowpass", "gain_eq"])
    p = dict(kind=kind, snr=rng.uniform(5, 25), rt=rng.uniform(0.2, 0.8), cut=rng.uniform(2500, 5000),
             tilt=rng.uniform(-6, 6), seed=rng.randrange(10**6))
    return p

def apply(w, p):
    g = torch.Generator().manual_seed(p["seed"])
    if p["kind"] == "phone":
        w = AF.highpass_biquad(AF.lowpass_biquad(w, 16000, 3400), 16000, 300)
    elif p["kind"] == "lowpass":
        w = AF.lowpass_biquad(w, 16000, p["cut"])
    elif p["kind"] == "reverb":
        n = int(p["rt"] * 16000)
        ir = torch.randn(n, generator=g) * torch.exp(-6.9 * torch.arange(n) / n)
        ir[0] = 1.0
        w = AF.fftconvolve(w, ir)[: len(w)]
        w = w / w.abs().max().clamp(min=1e-6) * 0.5
    elif p["kind"] == "gain_eq":
        w = AF.equalizer_biquad(w, 16000, 1000.0, p["tilt"], 0.7)
    if p["kind"] in ("noise", "phone", "reverb"):
        power = w.pow(2).mean().clamp(min=1e-10)
        w = w + torch.randn(len(w), generator=g) * torch.sqrt(power / 10 ** (p["snr"] / 10))
    return w

rng = random.Random(0)
X, kinds = [], []
for corpus in CORPORA:
    df = pd.read_csv(ROOT / f"{corpus}-16k" / "labels.csv")
    per_spk = {s: channel(rng) for s in df.speaker.unique()}
    for r in tqdm(df.itertuples(), total=len(df), desc=corpus, mininterval=30):
        p = per_spk[r.speaker]
        X.append(clip_descriptors(apply(load_audio(ROOT / f"{corpus}-16k" / r.path), p)))
        kinds.append(p["kind"])
torch.save({"x": torch.stack(X), "kind": kinds}, "runs/travel/prosody2_aug.pt")
print("done")
