"""What each shipped travelling model answers, lone clip by lone clip, when the evaluation-only corpora
are recorded quieter: the share of each emotion at 0, -20 and -40 dB (a gain applied exactly to the
descriptors: every log power moves by it). Needs the descriptors of runs/loco-trim (its train command in
the card) and the previous model's folder, e.g.
  mkdir -p /tmp/prev && for f in travel.json travel.safetensors; do
    git show 8d661d4:w2v2/pretrained/emotion/$f > /tmp/prev/$f; done
Run from the project root: python experiments/travel/level_shares.py /tmp/prev > experiments/travel/results/level.txt"""
import math
import sys

import torch

from w2v2.data.labels import EMOTIONS
from w2v2.emotion.descriptors import LOUDNESS_LEVELS, MEL_MEANS, MFCC0_MEAN
from w2v2.emotion.travel import load_travel

cache = torch.load(sys.argv[2] if len(sys.argv) > 2 else "runs/loco-trim/descriptors.pt", weights_only=False)
models = {"previous (absolute levels)": load_travel(sys.argv[1])[0],
          "shipped (level-free lone clips)": load_travel("w2v2/pretrained/emotion")[0]}


def at_gain(x: torch.Tensor, db: float) -> torch.Tensor:
    x, shift = x.clone(), db / 10 * math.log(10)
    x[:, list(LOUDNESS_LEVELS)] += shift
    x[:, MFCC0_MEAN] += math.sqrt(40) * shift
    x[:, MEL_MEANS] += shift
    return x


print("share of each answer, every clip predicted alone (clip mode), by the model trained on all three corpora")
for corpus in ["savee", "turev-db", "urdu"]:
    x = torch.stack([v for k, v in cache.items() if f"/{corpus}-16k/" in k])
    for name, model in models.items():
        for db in (0, -20, -40):
            pred = model.probs(at_gain(x, db)).argmax(1)
            shares = " ".join(f"{e} {float((pred == i).float().mean()):.2f}" for i, e in enumerate(EMOTIONS))
            print(f"{corpus:9s} ({len(x)} clips) {name:32s} {db:4d} dB: {shares}")
