"""Small recording sets: a folder of 10-50 files is standardised by its own statistics (the set heads), which
are noisy for few recordings and biased where the set holds few emotions. Measured here with the product's own
model (`w2v2.emotion.travel.fit`, the shipped recipe), leave-one-corpus-out as in the card (RAVDESS, ASED and
the Indian set each unseen by a model of the other two; SAVEE, TurEV-DB and Urdu by a model of all three): R
random sets of N clips of each unseen corpus, answered per set, clip by clip, and with the two hedged,
p = w * p_set + (1 - w) * p_clip, w = N / (N + K) (K=10 is what `TravelConfig.set_prior` now does). UAR over
the corpus's classes, pooled over the draws; 3 seeds (each its own fit and its own draws), mean and sd.

  python experiments/travel/small_sets.py   (needs runs/travel/feats_meta.pt and prosody_trim.pt)
"""
import numpy as np
import pandas as pd
import torch

from w2v2.emotion.travel import TravelConfig, fit

CORPORA = ["ravdess", "ased", "indian-emospeech", "savee", "turev-db", "urdu"]
SHIP = ["ravdess", "ased", "indian-emospeech"]
SIZES, DRAWS, KS, SEEDS = (10, 20, 50), 40, (10, 30), 3
torch.set_num_threads(2)


def uar(y: np.ndarray, pred: np.ndarray, classes: list[int]) -> float:
    return float(np.mean([(pred[y == c] == c).mean() for c in classes]))


def draws(labels: np.ndarray, n: int, two_classes: bool, rng: np.random.Generator) -> list[np.ndarray]:
    """DRAWS random sets of n clips: of any classes, or (two_classes) of two random classes of the corpus."""
    out = []
    for _ in range(DRAWS):
        pool = np.arange(len(labels))
        if two_classes:
            pair = rng.choice(np.unique(labels), 2, replace=False)
            pool = pool[np.isin(labels, pair)]
        out.append(rng.choice(pool, min(n, len(pool)), replace=False))
    return out


def main() -> None:
    meta = torch.load("runs/travel/feats_meta.pt", weights_only=False)["meta"]
    x = torch.load("runs/travel/prosody_trim.pt").float()
    corp, labels, speakers = meta.corpus.values, meta.label.values, meta.speaker.astype(str).values
    rows = []
    for seed, test in ((s, t) for s in range(SEEDS) for t in CORPORA):
        train = np.isin(corp, [c for c in SHIP if c != test])
        model = fit(x[train], labels[train].tolist(), corp[train].tolist(), speakers[train].tolist(),
                    TravelConfig(set_prior=0, seed=seed))  # the set heads alone; the hedges below (K=10: shipped)
        te = np.flatnonzero(corp == test)
        classes = sorted(set(labels[te]))
        rng = np.random.default_rng(seed)
        for mix in ("any classes", "two classes"):
            for n in SIZES:
                answers: dict[str, list[np.ndarray]] = {}
                truth = []
                for idx in draws(labels[te], n, mix == "two classes", rng):
                    rows_ = te[idx]
                    p_set = model.probs(x[rows_], ["set"] * len(rows_))
                    p_clip = model.probs(x[rows_])
                    truth.append(labels[rows_])
                    for name, p in [("set", p_set), ("clip", p_clip)] + [
                            (f"hedge K={k}", len(rows_) / (len(rows_) + k) * p_set
                             + k / (len(rows_) + k) * p_clip) for k in KS]:
                        answers.setdefault(name, []).append(np.array(classes)[p[:, classes].argmax(1).numpy()])
                y = np.concatenate(truth)
                row = {"seed": seed, "corpus": test, "sets": mix, "N": n}
                row |= {name: uar(y, np.concatenate(a), classes) for name, a in answers.items()}
                rows.append(row)
                print(pd.DataFrame([row]).round(3).to_string(index=False, header=len(rows) == 1), flush=True)
    df = pd.DataFrame(rows)
    per_seed = df.drop(columns="corpus").groupby(["sets", "N", "seed"]).mean()  # each seed's mean of the six
    print(f"\nmean over the six corpora, then mean ± sd over {SEEDS} seeds")
    stats = per_seed.groupby(["sets", "N"]).agg(["mean", "std"])
    print(pd.DataFrame({name: [f"{m:.3f} ± {s:.3f}" for m, s in zip(stats[name, "mean"], stats[name, "std"])]
                        for name in per_seed.columns}, index=stats.index).to_string())


if __name__ == "__main__":
    main()
