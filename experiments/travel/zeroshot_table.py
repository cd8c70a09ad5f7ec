"""Scores of zeroshot_net.py's saved probabilities: UAR over each corpus's own classes (restricted argmax),
neutral recall. python experiments/travel/zeroshot_table.py [runs/travel/zeroshot_net.pt]"""
import sys
import numpy as np, torch

E = ["angry", "fear", "sad", "disgust", "neutral", "happy"]
d = torch.load(sys.argv[1] if len(sys.argv) > 1 else "runs/travel/zeroshot_net.pt", weights_only=False)
meta = d["meta"]

def set_prior(p, groups):
    """Each set's probabilities divided by the set's mean prediction (renormalised): the output-side
    twin of per-set standardisation, for a model whose inputs are not standardised."""
    out = p.clone()
    for g in np.unique(groups):
        i = torch.as_tensor(np.flatnonzero(groups == g))
        q = p[i] / p[i].mean(0)
        out[i] = q / q.sum(1, keepdim=True)
    return out

corpus = meta.corpus.to_numpy()
spk = np.array([f"{c}/{s}" for c, s in zip(meta.corpus, meta.speaker)])
arms = {"network": d["net"], "network, set prior": set_prior(d["net"], corpus),
        "travel per set": d["set"], "travel per speaker": d["speaker"],
        "network + travel per set": (d["net"] + d["set"]) / 2,
        "network (set prior) + travel per set": (set_prior(d["net"], corpus) + d["set"]) / 2,
        "network + travel per speaker": (d["net"] + d["speaker"]) / 2,
        "network (speaker prior) + travel per speaker": (set_prior(d["net"], spk) + d["speaker"]) / 2}
print(f"{'arm':46s} " + " ".join(f"{c:>18s}" for c in ["savee", "turev-db", "urdu"]) + "   mean")
for name, p in arms.items():
    cells, us = [], []
    for c in ["savee", "turev-db", "urdu"]:
        m = corpus == c
        y = meta.label.to_numpy()[m]
        classes = sorted(set(y))
        pred = np.array(classes)[p[torch.as_tensor(m)][:, classes].argmax(1).numpy()]
        rec = {k: float((pred[y == k] == k).mean()) for k in classes}
        u = float(np.mean(list(rec.values())))
        us.append(u)
        cells.append(f"{u:.3f} (neu {rec.get(4, float('nan')):.2f})")
    print(f"{name:46s} " + " ".join(f"{x:>18s}" for x in cells) + f"  {np.mean(us):.3f}")
