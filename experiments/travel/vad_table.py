"""How many labelled corpus clips the speech detector would answer "no speech" (w2v2.emotion.speech as it
is now), from runs/travel/vad_corpora.csv (vad_corpora.py, run with the detector as it is now) re-scored where
needed, and the same for made sounds (silence, noise, music, hum), also at 1/100 of their level (the
detector hears every clip at one level): python experiments/travel/vad_table.py"""
import sys

import pandas as pd
import torch

sys.path.insert(0, "tests/emotion")
from sounds import hum, music, white_noise  # noqa: E402

from w2v2.data.audio import load_audio  # noqa: E402
from w2v2.emotion.speech import MIN_SPEECH_SECONDS, THRESHOLD, speech_seconds  # noqa: E402

d = pd.read_csv("runs/travel/vad_corpora.csv")
assert THRESHOLD <= 0.5  # a clip with enough speech at p > 0.5 has enough at the lower threshold
d["now"] = d.speech_s
low = d.speech_s < MIN_SPEECH_SECONDS
d.loc[low, "now"] = [speech_seconds(load_audio(f"../shared/data/{r.corpus}-16k/{r.path}")) for r in d[low].itertuples()]
d["no_speech"] = d.now < MIN_SPEECH_SECONDS
print(f"threshold p > {THRESHOLD}, at least {MIN_SPEECH_SECONDS} s of speech")
print(d.groupby("corpus", sort=False).agg(clips=("path", "size"), no_speech=("no_speech", "sum")).to_string())
print(f"all: {int(d.no_speech.sum())} of {len(d)} ({d.no_speech.mean():.2%})")
print(d[d.no_speech][["corpus", "path", "seconds", "now"]].to_string(index=False))
for name, x in [("digital silence 3 s", torch.zeros(48000)), ("white noise 5 s", white_noise(5)),
                ("loud white noise 5 s", white_noise(5, 1, 0.8)), ("music 10 s", music(10)),
                ("music 10 s, other seed", music(10, 1)), ("music 30 s", music(30, 2)), ("50 Hz hum 5 s", hum(5)),
                ("white noise 5 s at 1/100", white_noise(5) * 0.01), ("music 10 s at 1/100", music(10) * 0.01),
                ("music 10 s, other seed, at 1/10", music(10, 1) * 0.1), ("50 Hz hum 5 s at 1/100", hum(5) * 0.01)]:
    s = speech_seconds(x)
    print(f"{name}: {s:.2f} s of speech -> {'no speech' if s < MIN_SPEECH_SECONDS else 'speech'}")
