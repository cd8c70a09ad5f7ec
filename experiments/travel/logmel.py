"""A second view for the travelling model: a small CNN on log-mel spectrograms standardised per speaker
(training) and per recording set (test), leave-one-corpus-out as in loco.py.

  python experiments/travel/logmel.py extract           # -> runs/travel/logmel.pt (all six corpora's clips)
  python experiments/travel/logmel.py train SEED [key=value ...]   # -> runs/travel/logmel_probs{tag}_s{SEED}.pt
      keys: epochs, lr, wd, ch, dropout, read (read speech as neutral at this weight), views=1 (also the
      per-speaker view, shrunk toward the set: ..._speaker_s{SEED}.pt), clip=1, clipw=1, vtlp=A (band-axis warp)

The probabilities are saved per unseen corpus, in loco.py's clip order, for loco.py's `ext=` option (the
descriptors' probabilities averaged with these). One core (torch threads 1).

Design: each clip at unit RMS; 64 log-mel bands (25 ms / 10 ms) with a floor of 1e-3 of the clip's mean
band power; each band standardised by the group's mean and sd over its clips' sounding frames (within
35 dB of the clip's loudest), so a speaker's or a studio's spectral colour is taken out as the descriptors'
per-group standardisation takes out theirs. The network: 3 convolutions over time (bands as channels),
mean and sd pooled over time, dropout, a linear layer; each corpus's absent classes left out of its softmax;
each corpus and within it each class weighing the same; random 3 s crops with band and time masking.
Trained a fixed number of epochs (no early stopping: the test corpus must not choose it).
"""
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchaudio

torch.set_num_threads(1)
CORPORA = ["ravdess", "ased", "indian-emospeech", "savee", "turev-db", "urdu"]
SHIP = ["ravdess", "ased", "indian-emospeech"]
ROOT = Path("../shared/data")
HOP = 160
OUT = Path("runs/travel")


def extract(read=False):
    from w2v2.data.audio import load_audio
    meta = torch.load(OUT / "feats_meta.pt", weights_only=False)["meta"]
    if read:  # the shipped read speech (neutral voices): read_desc_f1e-2.pt's clips, in its order
        meta = torch.load(OUT / "read_desc_f1e-2.pt", weights_only=False)["meta"].assign(
            path=lambda m: m.path.str.split("/", n=1).str[1],
            corpus=lambda m: [p.split("/")[0].removesuffix("-16k") for p in
                              torch.load(OUT / "read_desc_f1e-2.pt", weights_only=False)["meta"].path])
    mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=HOP, n_mels=64, f_min=50, f_max=8000)
    specs, loud = [], []
    t0 = time.time()
    for i, r in enumerate(meta.itertuples()):
        w = load_audio(ROOT / f"{r.corpus}-16k" / r.path)
        w = w - w.mean()
        w = w / w.pow(2).mean().sqrt().clamp_min(1e-8)
        m = mel(w)  # (64, t)
        lm = torch.log(m + 1e-3 * m.mean())
        e = m.sum(0)
        db = 10 * torch.log10(e.clamp_min(1e-12))
        specs.append(lm.half())
        loud.append(db >= db.max() - 35)
        if i % 500 == 0:
            print(f"{i}/{len(meta)} {time.time() - t0:.0f}s", flush=True)
    torch.save(dict(specs=specs, loud=loud), OUT / ("logmel_read.pt" if read else "logmel.pt"))


def shrunk(specs, loud, spk, sets, idx, k):
    """Each speaker's band statistics shrunk toward its set's by a prior of k clips (the product's per-speaker
    mode): (n * speaker + k * set) / (n + k), n the speaker's clips."""
    out = {}
    for s_ in np.unique(sets[idx]):
        in_set = idx[sets[idx] == s_]
        mu_s, sd_s = group_stats(specs, loud, in_set)
        for g in np.unique(spk[in_set]):
            members = in_set[spk[in_set] == g]
            n = len(members)
            mu_g, sd_g = group_stats(specs, loud, members)
            mu = (n * mu_g + k * mu_s) / (n + k)
            var = (n * sd_g ** 2 + k * sd_s ** 2) / (n + k)
            for i in members:
                out[i] = (specs[i].float() - mu) / var.sqrt()
    return out


CLIP_WEIGHTED = False  # cfg clipw=1: every clip counts once in a group's statistics, however long
VTLP = 0.0  # cfg vtlp=A: each training crop's band axis stretched by a factor drawn from [1 - A, 1 + A]


def warp_bands(x, alpha):
    """(64, t) with band b read at band b * alpha (linear interpolation, clamped to the top band): the spectrum's
    envelope moved up or down as a longer or shorter vocal tract moves its formants (vocal tract length
    perturbation, Jaitly & Hinton 2013), applied on the mel axis."""
    pos = (torch.arange(x.shape[0], dtype=torch.float32) * alpha).clamp(max=x.shape[0] - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=x.shape[0] - 1)
    frac = (pos - lo)[:, None]
    return x[lo] * (1 - frac) + x[hi] * frac


def group_stats(specs, loud, idx):
    if CLIP_WEIGHTED:  # the mean of the clips' band means and second moments (the product's way)
        m1 = torch.stack([specs[i].float()[:, loud[i]].mean(1) for i in idx]).mean(0)
        m2 = torch.stack([specs[i].float()[:, loud[i]].pow(2).mean(1) for i in idx]).mean(0)
        return m1[:, None], (m2 - m1 ** 2).clamp_min(1e-6).sqrt()[:, None].clamp_min(1e-3)
    frames = torch.cat([specs[i].float()[:, loud[i]] for i in idx], 1)
    return frames.mean(1, keepdim=True), frames.std(1, keepdim=True).clamp_min(1e-3)


def standardised(specs, loud, groups, idx):
    out = {}
    for g in np.unique(groups[idx]):
        members = idx[groups[idx] == g]
        mu, sd = group_stats(specs, loud, members)
        for i in members:
            out[i] = ((specs[i].float() - mu) / sd)
    return out


class Net(torch.nn.Module):
    def __init__(self, ch=128, dropout=0.3):
        super().__init__()
        self.convs = torch.nn.ModuleList([torch.nn.Conv1d(64, ch, 5, padding=2), torch.nn.Conv1d(ch, ch, 5, padding=2),
                                          torch.nn.Conv1d(ch, ch, 5, padding=2)])
        self.norms = torch.nn.ModuleList([torch.nn.BatchNorm1d(ch) for _ in self.convs])
        self.drop = torch.nn.Dropout(dropout)
        self.out = torch.nn.Linear(2 * ch, 6)

    def forward(self, x, lengths):  # x (b, 64, t), lengths (b,) frames
        for k, (c, n) in enumerate(zip(self.convs, self.norms)):
            x = F.relu(n(c(x)))
            if k < len(self.convs) - 1:
                x = F.max_pool1d(x, 2, ceil_mode=True)
                lengths = (lengths + 1) // 2
        t = torch.arange(x.shape[-1])[None, :] < lengths[:, None]
        m = t[:, None, :].float()
        n = m.sum(-1).clamp_min(1)
        mu = (x * m).sum(-1) / n
        sd = (((x - mu[..., None]) ** 2 * m).sum(-1) / n).clamp_min(1e-6).sqrt()
        return self.out(self.drop(torch.cat([mu, sd], 1)))


def batch(xs, crop, rng, train):
    if train:
        outs = []
        for x in xs:
            t = x.shape[1]
            if t > crop:
                s = int(rng.integers(0, t - crop + 1))
                x = x[:, s:s + crop]
            x = x.clone()
            if VTLP:
                x = warp_bands(x, float(rng.uniform(1 - VTLP, 1 + VTLP)))
            f = int(rng.integers(0, 9)); f0 = int(rng.integers(0, 64 - f))
            x[f0:f0 + f] = 0
            tt = int(rng.integers(0, 21)); t0 = int(rng.integers(0, max(x.shape[1] - tt, 1)))
            x[:, t0:t0 + tt] = 0
            outs.append(x)
        xs = outs
    lengths = torch.tensor([x.shape[1] for x in xs])
    out = torch.zeros(len(xs), 64, int(lengths.max()))
    for i, x in enumerate(xs):
        out[i, :, :x.shape[1]] = x
    return out, lengths


def weights(meta):
    w = np.zeros(len(meta))
    for c, dc in meta.groupby("corpus"):
        for _, dl in dc.groupby("label"):
            w[dl.index] = 1.0 / (dc.label.nunique() * len(dl))
    return torch.as_tensor(w / w.sum() * len(meta), dtype=torch.float32)


def fit_predict(data, meta, tr, tests, seed, cfg, views=None):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mtr = meta.iloc[tr].reset_index(drop=True)
    present = {c: sorted(set(mtr.label[mtr.corpus == c])) for c in mtr.corpus.unique()}
    mask = torch.zeros(len(mtr), 6, dtype=torch.bool)
    for i, c in enumerate(mtr.corpus):
        mask[i, present[c]] = True
    y = torch.as_tensor(mtr.label.values.copy())
    w = weights(mtr)
    is_read = mtr.corpus.values == "read"
    if is_read.any():  # read clips: neutral against all six classes, together `read` of one corpus
        mask[torch.as_tensor(is_read)] = True
        w[torch.as_tensor(is_read)] *= float(cfg["read"])
    xs = [data[i] for i in tr]
    net = Net(cfg.get("ch", 128), cfg.get("dropout", 0.3))
    epochs, bs = cfg.get("epochs", 20), 32
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.get("lr", 1e-3), weight_decay=cfg.get("wd", 1e-2))
    steps = epochs * ((len(tr) + bs - 1) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.get("lr", 1e-3), total_steps=steps, pct_start=0.1)
    # sampling by weight (each corpus and class the same), one epoch = len(tr) draws
    probs = (w / w.sum()).numpy()
    t0 = time.time()
    for ep in range(epochs):
        net.train()
        order = rng.choice(len(tr), size=len(tr), p=probs)
        tot = 0.0
        for b0 in range(0, len(order), bs):
            b = order[b0:b0 + bs]
            x, lengths = batch([xs[i] for i in b], 300, rng, True)
            logits = net(x, lengths).masked_fill(~mask[b], -1e9)
            loss = F.cross_entropy(logits, y[b])
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
            tot += float(loss) * len(b)
        print(f"  epoch {ep + 1} loss {tot / len(order):.3f} {time.time() - t0:.0f}s", flush=True)
    net.eval()
    out = {name: predict(net, data, te) for name, te in tests.items()}
    for view, vdata in (views or {}).items():  # the same network, the test clips standardised another way
        out.update({f"{name}@{view}": predict(net, vdata, te) for name, te in tests.items()})
    return out


@torch.no_grad()
def predict(net, data, idx):
    return torch.stack([torch.softmax(net(data[i][None], torch.tensor([data[i].shape[-1]])), -1)[0] for i in idx])


def uar(y, pred, classes):
    return float(np.mean([(pred[y == c] == c).mean() for c in classes]))


def train_sets(seed, cfg):
    """One network a fold: training clips standardised per speaker, test clips per set (per speaker too with
    views=1); returns each unseen corpus's probabilities and its UAR lines."""
    meta = torch.load(OUT / "feats_meta.pt", weights_only=False)["meta"]
    d = torch.load(OUT / "logmel.pt")
    specs, loud = d["specs"], d["loud"]
    corp, spk = meta.corpus.values, meta.speaker.values
    everything = np.arange(len(meta))
    if cfg.get("clip"):  # every clip by its own band statistics (utterance-level CMVN), training and test alike
        by_spk = standardised(specs, loud, np.arange(len(meta)), everything)
        by_set = by_spk
    else:
        by_spk = standardised(specs, loud, spk, everything)
        by_set = (shrunk(specs, loud, spk, corp, everything, cfg.get("k", 10)) if cfg.get("speaker")
                  else standardised(specs, loud, corp, everything))
    data = {i: by_spk[i] for i in everything}
    if cfg.get("views"):  # the test clips per speaker too (shrunk toward the set, prior k), from the same network
        by_speaker = shrunk(specs, loud, spk, corp, everything, cfg.get("k", 10))
    if cfg.get("read"):  # read speech as neutral, per speaker, weighing `read` of one corpus (loco.py's read_w)
        rd = torch.load(OUT / "logmel_read.pt")
        rm = torch.load(OUT / "read_desc_f1e-2.pt", weights_only=False)["meta"]
        n0 = len(meta)
        meta = pd.concat([meta[["corpus", "label", "speaker"]], rm[["speaker", "label"]].assign(corpus="read")],
                         ignore_index=True)
        specs, loud = specs + rd["specs"], loud + rd["loud"]
        ridx = np.arange(n0, len(meta))
        data.update(standardised(specs, loud, meta.speaker.values, ridx))
        corp = meta.corpus.values
    folds = {t: [c for c in SHIP if c != t] for t in SHIP}
    folds["all"] = SHIP
    result, lines = {}, []
    for fold, pool in folds.items():
        tr = np.flatnonzero(np.isin(corp, pool + (["read"] if cfg.get("read") else [])))
        tests = [fold] if fold != "all" else [c for c in CORPORA if c not in SHIP]
        print(f"fold {fold}: {len(tr)} training clips", flush=True)
        for t in tests:
            for i in np.flatnonzero(corp == t):
                data[i] = by_set[i]  # test clips: the set's statistics
        views = {"speaker": by_speaker} if cfg.get("views") else None
        got = fit_predict(data, meta, tr, {t: np.flatnonzero(corp == t) for t in tests}, seed, cfg, views)
        for t in tests:
            for i in np.flatnonzero(corp == t):
                data[i] = by_spk[i]
            te = np.flatnonzero(corp == t)
            ys = meta.label.values[te]
            classes = sorted(set(ys))
            u = uar(ys, np.array(classes)[got[t][:, classes].argmax(1).numpy()], classes)
            lines.append(f"{t} {u:.3f}")
            print(f"  {t}: UAR {u:.3f}", flush=True)
        result.update(got)
    return result, lines


if __name__ == "__main__":
    if sys.argv[1] == "extract":
        extract(read=sys.argv[2:] == ["read"])
    else:
        seed = int(sys.argv[2])
        CLIP_WEIGHTED = "clipw=1" in sys.argv
        cfg = {k: (float(v) if "." in v or "e" in v else int(v)) for k, v in (a.split("=") for a in sys.argv[3:])}
        VTLP = float(cfg.get("vtlp", 0))
        tag = "".join(f"_{k}{v}" for k, v in sorted(cfg.items()))
        probs, lines = train_sets(seed, cfg)
        torch.save({k: v for k, v in probs.items() if "@" not in k}, OUT / f"logmel_probs{tag}_s{seed}.pt")
        for view in {k.split("@")[1] for k in probs if "@" in k}:
            torch.save({k.split("@")[0]: v for k, v in probs.items() if k.endswith("@" + view)},
                       OUT / f"logmel_probs{tag}_{view}_s{seed}.pt")
        print(f"seed {seed} {cfg}: " + ", ".join(lines))
