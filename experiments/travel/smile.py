"""openSMILE's standard feature sets (eGeMAPSv02, ComParE_2016 functionals) of every labelled corpus clip,
a research comparison for our own descriptors -> runs/travel/smile_{egemaps,compare}.pt (rows as prosody2.pt).
openSMILE is under audEERING's research licence, so it is never a dependency of the product: install it
apart (pip install --target /tmp/osmdeps opensmile) and run with PYTHONPATH=/tmp/osmdeps."""
from pathlib import Path

import numpy as np
import opensmile
import pandas as pd
import torch
from tqdm import tqdm

CORPORA = ["ravdess", "ased", "indian-emospeech", "savee", "turev-db", "urdu"]
ROOT = Path("../shared/data")
sets = {"egemaps": opensmile.FeatureSet.eGeMAPSv02, "compare": opensmile.FeatureSet.ComParE_2016}
smiles = {k: opensmile.Smile(feature_set=v, feature_level=opensmile.FeatureLevel.Functionals) for k, v in sets.items()}
out = {k: [] for k in sets}
for corpus in CORPORA:
    df = pd.read_csv(ROOT / f"{corpus}-16k" / "labels.csv")
    for p in tqdm(df.path, desc=corpus, mininterval=30):
        for k, s in smiles.items():
            out[k].append(s.process_file(str(ROOT / f"{corpus}-16k" / p)).to_numpy()[0].astype(np.float32))
for k, rows in out.items():
    x = torch.as_tensor(np.stack(rows))
    torch.save(torch.nan_to_num(x), f"runs/travel/smile_{k}.pt")
    print(k, tuple(x.shape))
