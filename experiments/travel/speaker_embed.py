"""Speaker embeddings of every clip of the travel harness (runs/travel/feats_small.pt's meta order) with
Resemblyzer's GE2E voice encoder (its pretrained weights ship inside the pip wheel, Apache-2.0): the input of
test-time speaker clustering (docs/travel.md). Resemblyzer is not a project dependency; install it aside:
  pip install --target /tmp/spkdeps Resemblyzer webrtcvad-wheels librosa ...
  PYTHONPATH=/tmp/spkdeps python experiments/travel/speaker_embed.py     -> runs/travel/speaker_ge2e.pt
"""
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from resemblyzer import VoiceEncoder, preprocess_wav

torch.set_num_threads(1)
meta = torch.load("runs/travel/feats_small.pt", weights_only=False)["meta"]
enc = VoiceEncoder("cpu", verbose=False)
out = np.zeros((len(meta), 256), dtype=np.float32)
start = time.time()
for i, (corpus, rel) in enumerate(zip(meta.corpus, meta.path, strict=True)):
    path = Path("../shared/data") / f"{corpus}-16k" / rel
    if not path.exists():
        path = path.with_suffix(".ogg")
    wav, sr = sf.read(path, dtype="float32", always_2d=True)
    w = preprocess_wav(wav.mean(1), source_sr=sr)
    if len(w) < 1600:  # the VAD kept (almost) nothing: the raw clip
        w = wav.mean(1)
    out[i] = enc.embed_utterance(w)
    if i % 500 == 0:
        print(f"{i}/{len(meta)} {time.time() - start:.0f} s", file=sys.stderr, flush=True)
torch.save(torch.from_numpy(out), "runs/travel/speaker_ge2e.pt")
print(f"{len(meta)} embeddings in {time.time() - start:.0f} s")
