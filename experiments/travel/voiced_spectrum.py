"""Descriptor variants for the methods table, one pass over every labelled corpus clip:
- runs/travel/feats_meta.pt: the clips' table (corpus, path, label, speaker), for loco.py's name `meta`;
- runs/travel/prosody_trim.pt: the descriptors as shipped (w2v2.emotion.descriptors);
- runs/travel/prosody_voiced.pt: the spectral tracks (centroid, alpha ratio, Hammarberg index, flux,
  MFCCs, log-mel bands) over voiced frames only instead of every sounding frame: in a noisy recording the
  noise between words is within 35 dB of the speech and enters the spectrum's statistics;
- runs/travel/prosody_db25.pt: "sounding" within 25 dB of the loudest frame instead of 35.
Usage (project root): python experiments/travel/voiced_spectrum.py"""
import math
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

import w2v2.emotion.descriptors as D
from w2v2.data.audio import load_audio

torch.set_num_threads(1)
CORPORA = ["ravdess", "ased", "indian-emospeech", "savee", "turev-db", "urdu"]


def variant(wave: torch.Tensor, spectral: str = "sounding", db: float = 35.0) -> torch.Tensor:
    """D._descriptors with the spectral tracks over `spectral` frames ("sounding" or "voiced") and the
    sounding threshold at `db` below the loudest frame (the shipped ones: "sounding", 35)."""
    power = D.power_spectrogram(wave)
    f0, peak = D.autocorrelation_pitch(wave)
    t = min(len(f0), len(power))
    power, f0, peak = power[:t], f0[:t], peak[:t]
    mel = (power @ D._MEL + 1e-10).log()
    mfcc = mel @ D._DCT
    loudness = (power.sum(1) + 1e-10).log()
    sounding = loudness > loudness.max() - math.log(10 ** (db / 10))
    voiced = (peak > 0.5) & sounding
    semitones = 12 * torch.log2(f0[voiced] / 100)
    F = D._FREQS
    low, high = F < 1000, (F >= 1000) & (F < 5000)
    centroid = (power * F).sum(1) / power.sum(1).clamp(min=1e-10) / 1000
    alpha = (power[:, low].sum(1).clamp(min=1e-10) / power[:, high].sum(1).clamp(min=1e-10)).log()
    hammarberg = (power[:, F < 2000].amax(1).clamp(min=1e-10)
                  / power[:, (F >= 2000) & (F < 5000)].amax(1).clamp(min=1e-10)).log()
    flux = torch.cat([torch.zeros(1), (mel[1:] - mel[:-1]).pow(2).mean(1)])
    s = sounding
    v = voiced if spectral == "voiced" and voiced.sum() >= 2 else sounding
    parts = [D.functionals(loudness[s])]
    parts += [D.functionals(track[v]) for track in (centroid, alpha, hammarberg, flux)]
    parts += [D.functionals(peak[s]), D.functionals(semitones), D.functionals((semitones[1:] - semitones[:-1]).abs())]
    m = mfcc[v]
    parts += [m.mean(0), m.std(0, unbiased=False), (m[1:] - m[:-1]).abs().mean(0) if len(m) > 1 else torch.zeros(13)]
    parts += [mel[v].mean(0), mel[v].std(0, unbiased=False), D.rhythm(voiced, sounding)]
    return torch.nan_to_num(torch.cat([p.float().flatten() for p in parts]))


def at_level(wave: torch.Tensor, fn) -> torch.Tensor:
    """D.clip_descriptors (DC removed, unit RMS, level added back) with `fn` in place of its descriptors."""
    shipped, D._descriptors = D._descriptors, fn
    try:
        return D.clip_descriptors(wave)
    finally:
        D._descriptors = shipped


rows, out = [], {"trim": [], "voiced": [], "db25": []}
for corpus in CORPORA:
    df = pd.read_csv(f"../shared/data/{corpus}-16k/labels.csv")
    for r in tqdm(df.itertuples(), total=len(df), desc=corpus, mininterval=30):
        wave = load_audio(f"../shared/data/{corpus}-16k/{r.path}")
        out["trim"].append(D.clip_descriptors(wave))
        out["voiced"].append(at_level(wave, lambda w: variant(w, "voiced")))
        out["db25"].append(at_level(wave, lambda w: variant(w, db=25.0)))
        rows.append(dict(corpus=corpus, path=str(r.path), label=int(r.label), speaker=f"{corpus}:{r.speaker}"))
Path("runs/travel").mkdir(parents=True, exist_ok=True)
n = len(rows)
empty = torch.zeros(n, 1, 1)  # no embeddings: loco.py with w2v=0 reads only the table
torch.save(dict(meta=pd.DataFrame(rows), mean=empty, std=empty), "runs/travel/feats_meta.pt")
for k, v in out.items():
    torch.save(torch.stack(v), f"runs/travel/prosody_{k}.pt")
print("done", n)
