"""UAR of the previous shipped model (pretrained:emotion-ravdess) on the corpora it never saw, from
runs/travel/before_probs.csv (before.py): over each corpus's own classes, and six-way."""
import numpy as np
import pandas as pd

E = ["angry", "fear", "sad", "disgust", "neutral", "happy"]
df = pd.read_csv("runs/travel/before_probs.csv")
P = [f"p{i}" for i in range(6)]
for corpus, d in df.groupby("corpus", sort=False):
    classes = sorted(d.label.unique())
    probs = d[P].to_numpy()
    own = np.array(classes)[probs[:, classes].argmax(1)]
    six = probs.argmax(1)
    rec = {E[c]: float((own[d.label.values == c] == c).mean()) for c in classes}
    uar6 = np.mean([(six[d.label.values == c] == c).mean() for c in classes])
    share = {E[c]: float((six == c).mean()) for c in range(6)}
    print(f"{corpus}: UAR {np.mean(list(rec.values())):.3f} (own classes), {uar6:.3f} (six-way); recall "
          + ", ".join(f"{k} {v:.2f}" for k, v in rec.items())
          + "; six-way answers " + ", ".join(f"{k} {v:.2f}" for k, v in share.items()))
