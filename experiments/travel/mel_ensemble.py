"""Several log-mel CNNs averaged (the product's travel.mel_nets > 1), from logmel.py's saved probabilities:
runs/travel/logmel_probs{TAG}_s{S}.pt for seeds S and S + OFFSET (... up to NETS networks) averaged into
runs/travel/logmel_ens{NETS}{TAG}_s{S}.pt, and the same for the per-speaker view ({TAG}_speaker), so that
loco.py's ext= reads them as one CNN a seed.
Run from the project root: python experiments/travel/mel_ensemble.py TAG NETS [OFFSET=3] [SEEDS=3]"""
import sys
from pathlib import Path

import torch

OUT = Path("runs/travel")
tag, nets = sys.argv[1], int(sys.argv[2])
offset = int(sys.argv[3]) if len(sys.argv) > 3 else 3
seeds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
for view in ("", "_speaker"):
    for s in range(seeds):
        parts = [torch.load(OUT / f"logmel_probs{tag}{view}_s{s + k * offset}.pt") for k in range(nets)]
        avg = {name: sum(p[name] for p in parts) / nets for name in parts[0]}
        torch.save(avg, OUT / f"logmel_ens{nets}{tag}{view}_s{s}.pt")
        print(f"logmel_ens{nets}{tag}{view}_s{s}.pt: seeds {[s + k * offset for k in range(nets)]}")
