"""How lossy codecs move the descriptors, and how a higher log floor changes that (a newcomer found that a
low-bitrate MP3 turned neutral RAVDESS clips into "angry"). For clips of the labelled corpora: each decoded
as it is and after a round trip through MP3 (libsndfile's default, about 25 kbps at 16 kHz), Opus and 8-bit
PCM; the descriptors computed with the log floor at 1e-10 (as shipped) and higher; printed: per descriptor
group, the mean |change| in units of the corpus's sd (the scale per-set standardisation works in).
Run from the project root: python experiments/codec/floor.py [CLIPS_PER_CORPUS]"""
import io, sys
import numpy as np, pandas as pd, soundfile as sf, torch
import w2v2.emotion.descriptors as D
from w2v2.data.audio import load_audio, resample

N = int(sys.argv[1]) if len(sys.argv) > 1 else 40
CORPORA = ["ravdess-16k", "ased-16k", "savee-16k", "urdu-16k"]
FLOORS = [1e-10, 1e-3, 1e-2]
CODECS = {"mp3": dict(format="MP3"), "opus": dict(format="OGG", subtype="OPUS"), "pcm8": dict(format="WAV", subtype="PCM_U8")}
GROUPS = {"loudness": slice(0, 8), "spectral shape": slice(8, 32), "flux": slice(32, 40), "voicing/pitch": slice(40, 64),
          "mfcc means": slice(64, 77), "mfcc sds": slice(77, 90), "mfcc changes": slice(90, 103),
          "mel means": slice(103, 143), "mel sds": slice(143, 183), "rhythm": slice(183, 189)}


def roundtrip(wave, codec):
    buf = io.BytesIO()
    sf.write(buf, wave.numpy(), 16000, **CODECS[codec])
    buf.seek(0)
    x, sr = sf.read(buf, dtype="float32", always_2d=True)
    return resample(torch.from_numpy(x.mean(1)), sr)  # Opus decodes at 48 kHz


def descriptors(wave, floor):
    return D.clip_descriptors(wave, floor)


rows = {}
for corpus in CORPORA:
    df = pd.read_csv(f"../shared/data/{corpus}/labels.csv").sample(N, random_state=0)
    waves = [load_audio(f"../shared/data/{corpus}/{p}") for p in df.path]
    for floor in FLOORS:
        clean = torch.stack([descriptors(w, floor) for w in waves])
        sd = clean.std(0)
        varies = sd > 1e-3  # a descriptor constant over the clips (a pitch change's 10th percentile: 0) has no scale
        for codec in CODECS:
            coded = torch.stack([descriptors(roundtrip(w, codec), floor) for w in waves])
            shift = torch.where(varies, (coded - clean).abs() / sd.clamp(min=1e-3), torch.nan).mean(0)
            rows[corpus, floor, codec] = {g: float(shift[s].nanmean()) for g, s in GROUPS.items()} | {
                "all": float(shift.nanmean())}
out = pd.DataFrame(rows).T
out.index.names = ["corpus", "floor", "codec"]
with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 2):
    print(out.groupby(["floor", "codec"]).mean())
