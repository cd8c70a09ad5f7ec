import sys, numpy as np, torch
sys.path.insert(0, "experiments/travel")
from loco import load, embed, group_standardise, kmeans_groups, CORPORA
meta, mean, std = load("small")
pros = torch.load("runs/travel/prosody.pt")
def purity(a, b):  # how pure clusters a are w.r.t. speakers b, and emotions
    tot = 0
    for c in np.unique(a):
        _, cnt = np.unique(b[a == c], return_counts=True); tot += cnt.max()
    return tot / len(a)
cands = {f"w2v_L{l}": embed(mean, std, [l], 0) for l in range(5)}
cands["w2v_L0_std"] = embed(mean, std, [0], 1)
cands["mel_mean"] = pros[:, :40]
for corpus in CORPORA:
    te = np.flatnonzero(meta.corpus.values == corpus)
    spk = meta.speaker.values[te]; lab = meta.label.values[te]
    k = len(np.unique(spk))
    line = [f"{corpus}(k={k})"]
    for name, x in cands.items():
        z = group_standardise(x[te], np.zeros(len(te)))
        a = kmeans_groups(z, k)
        line.append(f"{name} spk{purity(a, spk):.2f}/emo{purity(a, lab):.2f}")
    print("  ".join(line), flush=True)
