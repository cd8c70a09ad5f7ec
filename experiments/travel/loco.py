"""Leave-one-corpus-out on cached per-clip features (the methods table of docs/travel.md).
Run from the project root: python experiments/travel/loco.py FEATS key=value ..."""
import sys, json, itertools, math
import numpy as np, pandas as pd, torch, torch.nn.functional as F
from w2v2.emotion.descriptors import level_free, with_level  # the product's: descriptors alone (w2v=0)

CORPORA = ["ravdess", "ased", "indian-emospeech", "savee", "turev-db", "urdu"]
SHIP = ["ravdess", "ased", "indian-emospeech"]
E = ["angry", "fear", "sad", "disgust", "neutral", "happy"]

def load(name):
    d = torch.load(f"runs/travel/feats_{name}.pt", weights_only=False)
    return d["meta"], d["mean"].float(), d["std"].float()

def embed(mean, std, layers, stats):
    x = mean[:, layers]
    if stats:
        x = torch.cat([x, std[:, layers]], -1)
    return x.flatten(1)

def group_standardise(x, groups, eps=1e-5, scale=True):
    out = torch.empty_like(x)
    for g in np.unique(groups):
        idx = torch.as_tensor(np.flatnonzero(groups == g))
        mu = x[idx].mean(0)
        sd = x[idx].std(0) if len(idx) > 1 else torch.ones_like(mu)
        if CFG.get("robust") and len(idx) > 2:  # median and scaled MAD (the sd where the MAD is 0)
            mu = x[idx].median(0).values
            mad = 1.4826 * (x[idx] - mu).abs().median(0).values
            sd = torch.where(mad > 1e-6, mad, sd)
        out[idx] = (x[idx] - mu) / (sd + eps) if scale else x[idx] - mu
    return out

def shrunk_standardise(x, groups, sets, kk, eps=1e-5):
    """Per-group standardisation with the group's mean and variance shrunk toward its set's by a prior of
    k clips: (n * group + k * set) / (n + k). k=0 is per group; large k is per set."""
    out = torch.empty_like(x)
    for s_ in np.unique(sets):
        in_set = sets == s_
        mu_s, var_s = x[in_set].mean(0), x[in_set].var(0)
        for g in np.unique(groups[in_set]):
            idx = torch.as_tensor(np.flatnonzero(in_set & (groups == g)))
            n = len(idx)
            k = k_of[g] if (k_of := (kk if isinstance(kk, dict) else None)) else kk
            mu_g = x[idx].mean(0)
            var_g = x[idx].var(0, correction=0) if n > 1 else torch.zeros_like(mu_g)
            mu = (n * mu_g + k * mu_s) / (n + k)
            var = (n * var_g + k * var_s) / (n + k) if k else x[idx].var(0) if n > 1 else torch.ones_like(mu_g)
            out[idx] = (x[idx] - mu) / (var.sqrt() + eps)
    return out


def speaker_share(x, groups):
    """(d,): each column's share of variance between the groups' means (the rest is within groups)."""
    mu = x.mean(0)
    between = torch.zeros_like(mu)
    for g in np.unique(groups):
        idx = torch.as_tensor(np.flatnonzero(groups == g))
        between += len(idx) * (x[idx].mean(0) - mu) ** 2
    return between / ((x - mu) ** 2).sum(0).clamp_min(1e-12)


def balanced_standardise(x, groups, labels, eps=1e-5):
    """Per-group standardisation with each of the group's classes weighing the same in its mean and sd
    (labels known: training speakers), so that the centre does not move with a speaker's mix of emotions."""
    out = torch.empty_like(x)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        lab = labels[idx]
        _, inv, cnt = np.unique(lab, return_inverse=True, return_counts=True)
        w = torch.as_tensor(1.0 / cnt[inv], dtype=x.dtype)[:, None]
        w = w / w.sum()
        xi = x[torch.as_tensor(idx)]
        mu = (w * xi).sum(0)
        sd = ((w * (xi - mu) ** 2).sum(0) * len(idx) / max(len(idx) - 1, 1)).sqrt() if len(idx) > 1 else torch.ones_like(mu)
        out[torch.as_tensor(idx)] = (xi - mu) / (sd + eps)
    return out


def random_mix_standardise(x, groups, labels, copies, alpha, seed=0, eps=1e-5):
    """`copies` standardised copies of x: in each, every group's mean and sd are weighted by a random mix of
    its classes (Dirichlet(alpha) over the classes it has), so that the heads learn under the shifting
    centres that a test set of unknown emotional make-up gives. Returns (copies * n, d)."""
    rng = np.random.default_rng(seed)
    outs = []
    for _ in range(copies):
        out = torch.empty_like(x)
        for g in np.unique(groups):
            idx = np.flatnonzero(groups == g)
            cls, inv, cnt = np.unique(labels[idx], return_inverse=True, return_counts=True)
            mix = rng.dirichlet(np.full(len(cls), alpha))
            w = torch.as_tensor(mix[inv] / cnt[inv], dtype=x.dtype)[:, None]
            w = w / w.sum()
            xi = x[torch.as_tensor(idx)]
            mu = (w * xi).sum(0)
            sd = (w * (xi - mu) ** 2).sum(0).sqrt() if len(idx) > 1 else torch.ones_like(mu)
            out[torch.as_tensor(idx)] = (xi - mu) / (sd + eps)
        outs.append(out)
    return torch.cat(outs)


def group_rank(x, groups):
    """Each feature replaced by its normal score within its group (rank -> probit): robust to outliers
    and to a group's skew, where mean/sd standardisation is not."""
    out = torch.empty_like(x)
    for g in np.unique(groups):
        idx = torch.as_tensor(np.flatnonzero(groups == g))
        r = x[idx].argsort(0).argsort(0).float()
        out[idx] = torch.special.ndtri((r + 0.5) / len(idx)) if len(idx) > 1 else torch.zeros_like(x[idx])
    return out

def kmeans_groups(x, k, seed=0, iters=30):
    g = torch.Generator().manual_seed(seed)
    c = x[torch.randperm(len(x), generator=g)[:k]].clone()
    for _ in range(iters):
        a = torch.cdist(x, c).argmin(1)
        for j in range(k):
            if (a == j).any(): c[j] = x[a == j].mean(0)
    return a.numpy()

def class_mask(meta):
    present = {c: sorted(set(meta.label[meta.corpus == c])) for c in meta.corpus.unique()}
    m = torch.zeros(len(meta), 6, dtype=torch.bool)
    for i, c in enumerate(meta.corpus):
        m[i, present[c]] = True
    return m

def sample_weights(meta):
    # each corpus equal weight; within a corpus each of its classes equal weight
    w = np.zeros(len(meta))
    for c, dc in meta.groupby("corpus"):
        for l, dl in dc.groupby("label"):
            w[dl.index] = 1.0 / (dc.label.nunique() * len(dl))
    w = w / w.sum() * len(meta)
    return torch.as_tensor(w, dtype=torch.float32)

def train(x, y, mask, w, hidden, seed, epochs, wd, lr=1e-3, dropout=0.2, groups=None):
    """groups (n,) ints and CFG['dro'] > 0: group DRO (Sagawa et al. 2020), each group's weight growing with
    its loss, so that the worst training corpus leads."""
    torch.manual_seed(seed)
    eta = CFG.get("dro", 0) if groups is not None else 0
    q = torch.ones(int(groups.max()) + 1) / (int(groups.max()) + 1) if eta else None
    d = x.shape[1]
    if CFG.get("rank"):  # a low-rank linear head: d -> rank -> 6, no nonlinearity
        net = torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(d, int(CFG["rank"])),
                                  torch.nn.Linear(int(CFG["rank"]), 6))
    elif hidden:
        net = torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(d, hidden), torch.nn.GELU(),
                                  torch.nn.Dropout(dropout), torch.nn.Linear(hidden, 6))
    else:
        net = torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(d, 6))
    aux = torch.nn.Linear(d, 2) if CFG.get("arousal") else None  # arousal and valence from the same inputs
    params = list(net.parameters()) + (list(aux.parameters()) if aux is not None else [])
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    g = torch.Generator().manual_seed(seed)
    n = len(x)
    for ep in range(epochs):
        perm = torch.randperm(n, generator=g)
        for b in perm.split(128):
            xb, yb_soft = x[b], None
            if CFG.get("mixup"):  # mixup within each corpus (pairs share a class set): inputs and one-hot targets
                lam = float(np.random.default_rng(seed * 100003 + ep).beta(CFG["mixup"], CFG["mixup"]))
                lam = max(lam, 1 - lam)
                partner = mix_partner(b, groups, g)
                xb = lam * x[b] + (1 - lam) * x[partner]
                yb_soft = lam * F.one_hot(y[b], 6).float() + (1 - lam) * F.one_hot(y[partner], 6).float()
            logits = net(xb).masked_fill(~mask[b], float("-inf"))
            if yb_soft is not None:
                per = -(yb_soft * torch.log_softmax(logits, -1).masked_fill(~mask[b], 0)).sum(1) * w[b]
            elif CFG.get("smooth"):  # label smoothing over the clip's corpus's own classes
                allowed = mask[b].float()
                target = (1 - CFG["smooth"]) * F.one_hot(y[b], 6).float() + CFG["smooth"] * allowed / allowed.sum(1, keepdim=True)
                per = -(target * torch.log_softmax(logits, -1).masked_fill(~mask[b], 0)).sum(1) * w[b]
            else:
                per = F.cross_entropy(logits, y[b], reduction="none") * w[b]
            if CFG.get("vrex"):  # V-REx (Krueger et al. 2021): the spread of the corpora's mean losses penalised
                k = int(groups.max()) + 1
                gl = torch.zeros(k).index_add(0, groups[b], per)
                gw = torch.zeros(k).index_add(0, groups[b], w[b])
                seen = gw > 0
                gm = gl[seen] / gw[seen]
                loss = per.sum() / w[b].sum() + (CFG["vrex"] * gm.var(correction=0) if seen.sum() > 1 else 0)
            elif eta:
                gl = torch.zeros_like(q).index_add(0, groups[b], per)
                gw = torch.zeros_like(q).index_add(0, groups[b], w[b])
                seen = gw > 0
                gl = torch.where(seen, gl / gw.clamp_min(1e-8), torch.zeros_like(gl))
                q = q * torch.exp(eta * gl.detach() * seen); q = q / q.sum()
                loss = (q * gl).sum() / (q * seen).sum()
            else:
                loss = per.sum() / w[b].sum()
            if aux is not None:  # arousal / valence of each class (Russell's circumplex), a regression beside
                av = AV[y[b]]
                loss = loss + CFG["arousal"] * ((aux(x[b]) - av) ** 2 * w[b, None]).sum() / w[b].sum()
            opt.zero_grad(); loss.backward(); opt.step()
    return net.eval()

# angry, fear, sad, disgust, neutral, happy: (arousal, valence)
AV = torch.tensor([[1.0, -1.0], [1.0, -1.0], [-1.0, -1.0], [0.0, -1.0], [-1.0, 0.0], [1.0, 1.0]])


def mix_partner(b, groups, g):
    """For each index in batch b, a random partner in the batch from the same group (itself if alone)."""
    out = b.clone()
    gb = groups[b]
    for k in gb.unique():
        pos = torch.nonzero(gb == k).flatten()
        out[pos] = b[pos[torch.randperm(len(pos), generator=g)]]
    return out

def uar(y, pred, classes):
    rec = {E[c]: float((pred[y == c] == c).mean()) for c in classes}
    return float(np.mean(list(rec.values()))), rec

def prior_em(p, iters=50):
    """Saerens et al. 2002: re-estimate test priors; p (n,k) under train priors uniform."""
    prior = torch.full((p.shape[1],), 1.0 / p.shape[1]); base = prior.clone()
    for _ in range(iters):
        q = p * (prior / base); q = q / q.sum(1, keepdim=True)
        prior = q.mean(0)
    return q

def fit_bias(logits, y, mask, w, steps=300):
    """Class biases (6,) that maximise the weighted log-likelihood of held-out logits (masked to each
    clip's corpus classes): calibration learnt on corpora the model did not train on."""
    b = torch.zeros(6, requires_grad=True)
    opt = torch.optim.LBFGS([b], max_iter=steps)
    def closure():
        opt.zero_grad()
        loss = (F.cross_entropy((logits + b).masked_fill(~mask, float("-inf")), y, reduction="none") * w).sum() / w.sum()
        loss = loss + 1e-3 * (b ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return b.detach()

def inner_bias(x_all, meta, pool, norm, spk, corp, cfg, seed):
    """Leave-one-corpus-out inside the training pool: each pool corpus predicted by a model trained on the
    others, then one set of class biases fitted on all those held-out predictions."""
    logits, ys, masks, ws = [], [], [], []
    for inner in pool:
        tr = np.flatnonzero(np.isin(corp, [c for c in pool if c != inner])); te = np.flatnonzero(corp == inner)
        xtr, xte = normed(x_all, tr, te, norm, spk, corp)
        mtr, mte = meta.iloc[tr].reset_index(drop=True), meta.iloc[te].reset_index(drop=True)
        net = train(xtr, torch.as_tensor(mtr.label.values), class_mask(mtr), sample_weights(mtr), cfg.get("hidden", 0),
                    seed, cfg.get("epochs", 30), cfg.get("wd", 1e-2), cfg.get("lr", 1e-3), cfg.get("dropout", 0.2))
        with torch.no_grad():
            logits.append(net(xte))
        ys.append(torch.as_tensor(mte.label.values)); masks.append(class_mask(mte)); ws.append(sample_weights(mte) / len(pool))
    return fit_bias(torch.cat(logits), torch.cat(ys), torch.cat(masks), torch.cat(ws))

def balanced(net, raw, logits, rounds):
    """The set's mean and sd weighted so that each predicted class counts the same (`rounds` times), for a
    set that holds few emotions; the logits of raw (n, d) standardised so."""
    for _ in range(rounds):
        q = torch.softmax(logits, -1)
        wc = (q / q.mean(0)).sum(1, keepdim=True)
        mu = (wc * raw).sum(0) / wc.sum()
        sd = ((wc * (raw - mu) ** 2).sum(0) / wc.sum()).sqrt() + 1e-5
        logits = net((raw - mu) / sd)
    return logits

def self_train(xtr, y, mask, w, xte, logits, cfg, seed, corpora):
    """Transductive self-training: the unseen set's most confident clips of each predicted class (the top
    `self` share of each, by that class's probability; all six classes open) join training with their
    predicted labels, weighing `self_w` times one of the `corpora` training corpora; the heads are trained
    again and the set predicted anew. Returns the new logits of xte."""
    p = torch.softmax(logits, -1)
    pred, keep = p.argmax(1), []
    for c in range(6):
        idx = torch.nonzero(pred == c).flatten()
        if len(idx):
            k = max(1, int(round(cfg["self"] * len(idx))))
            keep.append(idx[p[idx, c].argsort(descending=True)[:k]])
    keep = torch.cat(keep)
    wp = torch.full((len(keep),), float(w.sum()) / corpora * cfg.get("self_w", 1.0) / len(keep))
    net = train(torch.cat([xtr, xte[keep]]), torch.cat([y, pred[keep]]),
                torch.cat([mask, torch.ones(len(keep), 6, dtype=torch.bool)]), torch.cat([w, wp]),
                cfg.get("hidden", 0), seed, cfg.get("epochs", 30), cfg.get("wd", 1e-2), cfg.get("lr", 1e-3),
                cfg.get("dropout", 0.2))
    with torch.no_grad():
        return net(xte)

def run(meta, mean, std, cfg):
    parts = []
    if cfg.get("w2v", 1):
        layers = cfg.get("layers", list(range(mean.shape[1])))
        parts.append(embed(mean, std, layers, cfg.get("stats", 1)))
    if cfg.get("prosody", 0):
        name = {2: "prosody2"}.get(cfg["prosody"], f"prosody_{cfg['prosody']}")
        parts.append(torch.load(f"runs/travel/{name}.pt"))  # experiments/travel/descriptors.py, trim_rhythm.py
    if cfg.get("smile"):  # openSMILE's eGeMAPSv02 / ComParE_2016 functionals (experiments/travel/smile.py)
        for name in cfg["smile"].split("+"):
            parts.append(torch.load(f"runs/travel/smile_{name}.pt"))
    x_all = torch.cat(parts, 1)
    kind = np.array(["clip"] * len(meta))
    if cfg.get("concat_test") or cfg.get("concat_train"):  # 8 s windows of joined clips (concat_windows.py)
        cm = torch.load("runs/travel/concat_meta.pt", weights_only=False)
        meta = pd.concat([meta[["corpus", "label", "speaker"]], cm[["corpus", "label", "speaker"]]], ignore_index=True)
        x_all = torch.cat([x_all, torch.load("runs/travel/concat_trim.pt")])
        kind = np.array(["clip"] * (len(meta) - len(cm)) + ["window"] * len(cm))
        CFG["_labels"] = meta.label.values
    if cfg.get("drop"):  # leave descriptor groups out (w2v2.emotion.descriptors' layout; descriptors alone)
        gone = set().union(*(range(*GROUPS[g]) for g in cfg["drop"].split("+")))
        x_all = x_all[:, [i for i in range(x_all.shape[1]) if i not in gone]]
    if cfg.get("read"):  # read speech (read_speech.py) as extra neutral training clips of many voices
        rd = torch.load(f"runs/travel/read_desc{cfg.get('read_file', '')}.pt", weights_only=False)
        rm = rd["meta"] if cfg["read"] == "all" else rd["meta"][rd["meta"].corpus.isin(cfg["read"].split("+"))]
        meta = pd.concat([meta[["corpus", "label", "speaker"]],
                          rm[["speaker", "label"]].assign(corpus="read")], ignore_index=True)
        x_all = torch.cat([x_all, rd["x"][torch.as_tensor(rm.index.values)]])
        kind = np.concatenate([kind, np.array(["read"] * len(rm))])
        CFG["_labels"] = meta.label.values
        if cfg.get("read_norm") == "corpus":  # the read clips standardised as one group, not per speaker
            meta.loc[meta.corpus == "read", "speaker"] = "read:all"
    spk = meta.speaker.values; corp = meta.corpus.values
    results = []
    for test in CORPORA:
        pool = SHIP if cfg.get("train", "ship") == "ship" else CORPORA
        train_kind = (kind == "clip") | bool(cfg.get("concat_train"))
        tr = np.flatnonzero((np.isin(corp, [c for c in pool if c != test]) & train_kind) | (kind == "read"))
        if cfg.get("drop_single"):  # training speakers of one clip (zeros once standardised) left out
            one = {g for g, k in zip(*np.unique(spk[tr], return_counts=True)) if k == 1}
            tr = tr[~np.isin(spk[tr], list(one))]
        te = np.flatnonzero((corp == test) & (kind == ("window" if cfg.get("concat_test") else "clip")))
        norm = cfg.get("norm", "speaker")
        if cfg.get("test_prosody"):  # the unseen corpus's clips as another file has them (a codec's round trip)
            coded = x_all.clone()
            coded[te] = torch.load(f"runs/travel/prosody_{cfg['test_prosody']}.pt")[te]
            xtr, xte = normed(coded, tr, te, norm, spk, corp)
        else:
            xtr, xte = normed(x_all, tr, te, norm, spk, corp)
        if cfg.get("clipz"):  # standardised values beyond +-clipz clipped: outliers (a studio's odd clip) tamed
            c = float(cfg["clipz"])
            xtr, xte = xtr.clamp(-c, c), xte.clamp(-c, c)
        if cfg.get("dev"):  # how far the clip strays from its group's centre: log mean square per descriptor group
            xtr, xte = with_deviation(xtr, cfg["dev"]), with_deviation(xte, cfg["dev"])
        if cfg.get("concat_global"):  # the clip by the training pool's statistics too, as more inputs to one head
            gtr, gte = normed(level_free(x_all) if cfg.get("level_free_global") else x_all, tr, te, "global", spk, corp)
            xtr, xte = torch.cat([xtr, gtr], 1), torch.cat([xte, gte], 1)
        if cfg.get("aug"):
            xa = torch.load("runs/travel/prosody2_aug.pt")["x"]
            spk_aug = np.array([s + ":aug" for s in spk])
            xa_tr, _ = normed(xa, tr, te, norm, spk_aug, corp)
            xtr = torch.cat([xtr, xa_tr])
            tr_meta_double = True
        if cfg.get("ens"):
            wtr, wte = normed(embed(mean, std, list(range(mean.shape[1])), 1), tr, te, norm, spk, corp)
        mtr = meta.iloc[tr].reset_index(drop=True)
        if len(xtr) > len(tr) and len(xtr) % len(tr) == 0:  # augmented copies of the training clips
            mtr = pd.concat([mtr] * (len(xtr) // len(tr))).reset_index(drop=True)
        y = torch.as_tensor(mtr.label.values); mask = class_mask(mtr)
        w = sample_weights(mtr) if cfg.get("balance", 1) else torch.ones(len(mtr))
        if cfg.get("read"):  # read clips: neutral against all six classes, weighing read_w of an emotional corpus
            is_read = torch.as_tensor(mtr.corpus.values == "read")
            mask[is_read] = True
            w[is_read] *= float(cfg.get("read_w", 1.0))
        classes = sorted(set(meta.label.values[te]))
        ys = meta.label.values[te]
        if cfg.get("select"):  # keep the descriptors most informative in every training corpus
            keep = consistent_features(xtr, mtr, cfg["select"])
            xtr, xte = xtr[:, keep], xte[:, keep]
        if cfg.get("nap"):  # nuisance attribute projection: drop the directions where corpora disagree per class
            xtr, xte = nap(xtr, xte, mtr, cfg["nap"])
        if cfg.get("coral"):
            xte = coral(xtr, xte, cfg["coral"])
        groups = torch.as_tensor(pd.factorize(mtr.corpus)[0])
        if cfg.get("lda") is not None:
            lda_net = lda(xtr, mtr, float(cfg["lda"]))
        for seed in range(cfg.get("seeds", 3)):
            net = lda_net if cfg.get("lda") is not None else train(
                xtr, y, mask, w, cfg.get("hidden", 0), seed, cfg.get("epochs", 30), cfg.get("wd", 1e-2),
                cfg.get("lr", 1e-3), cfg.get("dropout", 0.2), groups)
            if cfg.get("bag_corpus"):  # heads trained without each training corpus in turn, with the full one, averaged
                with torch.no_grad():
                    pbag = torch.softmax(net(xte), -1)
                for leave in np.unique(mtr.corpus.values):
                    keep = torch.as_tensor(np.flatnonzero(mtr.corpus.values != leave))
                    sub = mtr.iloc[keep.numpy()].reset_index(drop=True)
                    net_b = train(xtr[keep], y[keep], mask[keep], sample_weights(sub), cfg.get("hidden", 0), seed,
                                  cfg.get("epochs", 30), cfg.get("wd", 1e-2), cfg.get("lr", 1e-3),
                                  cfg.get("dropout", 0.2), groups[keep])
                    with torch.no_grad():
                        pbag = pbag + torch.softmax(net_b(xte), -1)
                BAG.append(torch.log(pbag / (1 + mtr.corpus.nunique())))
            if cfg.get("ens_corpus"):  # a second head on per-corpus standardised training, probabilities averaged
                xc, _ = normed(x_all, tr, te, "corpus", spk, corp)
                net_c = train(xc, y, mask, w, cfg.get("hidden", 0), seed, cfg.get("epochs", 30), cfg.get("wd", 1e-2),
                              cfg.get("lr", 1e-3), cfg.get("dropout", 0.2))
            with torch.no_grad():
                logits = net(xte)
            if BAG:
                logits = BAG.pop()
            if cfg.get("mood_k"):  # each speaker's prior grows as its per-set answers keep to one emotion
                logits = mood_shrunk(net, x_all[te], spk[te], corp[te], cfg)
            if cfg.get("subspace"):  # random-subspace ensemble: heads on random descriptor groups, probabilities averaged
                logits = subspace(xtr, xte, y, mask, w, cfg, seed)
            with torch.no_grad():
                if cfg.get("hedge_set"):  # this standardisation's and the whole set's, probabilities averaged
                    by_set = net(group_standardise(x_all[te], corp[te]))
                    logits = torch.log((torch.softmax(logits, -1) + torch.softmax(by_set, -1)) / 2)
                if cfg.get("hedge"):  # the clusters' and the whole set's standardisation, probabilities averaged
                    by_set = net(group_standardise(x_all[te], corp[te]))
                    logits = torch.log((torch.softmax(logits, -1) + torch.softmax(by_set, -1)) / 2)
            with torch.no_grad():
                logits = balanced(net, x_all[te], logits, cfg.get("balanced", 0))
            for _ in range(cfg.get("self_rounds", 1) if cfg.get("self") else 0):
                logits = self_train(xtr, y, mask, w, xte, logits, cfg, seed, mtr.corpus.nunique())
            if cfg.get("calib") == "bias":
                inner_pool = [c for c in pool if c != test]
                logits = logits + inner_bias(x_all, meta, inner_pool, norm, spk, corp, cfg, seed)
            p = torch.softmax(logits, -1)
            if cfg.get("hedge_global"):  # the lone-clip heads (training pool's statistics), probabilities averaged
                xg, xgte = normed(x_all, tr, te, "global", spk, corp)
                net_g = train(xg, y, mask, w, cfg.get("hidden", 0), seed, cfg.get("epochs", 30), cfg.get("wd", 1e-2),
                              cfg.get("lr", 1e-3), cfg.get("dropout", 0.2))
                with torch.no_grad():
                    p = (1 - cfg["hedge_global"]) * p + cfg["hedge_global"] * torch.softmax(net_g(xgte), -1)
            if cfg.get("ens_corpus"):
                with torch.no_grad():
                    p = (p + torch.softmax(net_c(xte), -1)) / 2
            if cfg.get("ens"):
                net2 = train(wtr, y, mask, w, 0, seed, cfg.get("epochs", 30), cfg.get("wd", 1e-2), 1e-3, 0.2)
                with torch.no_grad():
                    p = (1 - cfg["ens"]) * p + cfg["ens"] * torch.softmax(net2(wte), -1)
            if cfg.get("ext"):  # another model's probabilities for the same clips (logmel.py), averaged in
                q = torch.load(f"runs/travel/{cfg['ext']}_s{seed}.pt")[test]
                if cfg.get("ext_geo"):  # weighted geometric mean (log-probabilities averaged), renormalised
                    p = torch.softmax((1 - cfg["ext_w"]) * p.clamp_min(1e-8).log()
                                      + cfg["ext_w"] * q.clamp_min(1e-8).log(), -1)
                else:
                    p = (1 - cfg["ext_w"]) * p + cfg["ext_w"] * q
            if cfg.get("prior") == "em":
                p = prior_em(p)
            restricted = p[:, classes].argmax(1).numpy()
            if cfg.get("confusion") and seed == 0:  # rows: true class; columns: the answer among its classes
                cm = pd.crosstab(pd.Series([E[c] for c in ys], name=test),
                                 pd.Series([E[c] for c in np.array(classes)[restricted]], name="answer"), normalize="index")
                print(cm.round(2).to_string(), file=sys.stderr)
            u, rec = uar(ys, np.array(classes)[restricted], classes)
            u6, _ = uar(ys, p.argmax(1).numpy(), classes)
            results.append(dict(test=test, seed=seed, uar=u, uar6=u6, **{f"r_{k}": v for k, v in rec.items()}))
    return pd.DataFrame(results)

def nap(xtr, xte, meta, r):
    """Nuisance attribute projection (as in speaker verification): the top `r` directions of the spread of
    each class's per-corpus mean around its mean over corpora are projected out of both sets."""
    dev = []
    for c in range(6):
        means = [xtr[torch.as_tensor(((meta.corpus == k) & (meta.label == c)).values)].mean(0)
                 for k in meta.corpus.unique() if ((meta.corpus == k) & (meta.label == c)).any()]
        if len(means) > 1:
            m = torch.stack(means)
            dev.append(m - m.mean(0))
    u = torch.linalg.svd(torch.cat(dev), full_matrices=False).Vh[:r]  # (r, d)
    proj = lambda x: x - (x @ u.T) @ u  # noqa: E731
    return proj(xtr), proj(xte)


def lda(x, meta, shrink):
    """Linear discriminant analysis across corpora: each class's mean is the average of its mean in every
    training corpus that has it (each corpus's own speakers standardised), the covariance the pooled
    within-class one shrunk toward its diagonal; returns a callable giving (n, 6) logits."""
    d = x.shape[1]
    means = torch.zeros(6, d); cov = torch.zeros(d, d, dtype=torch.float64); n = 0
    for l in range(6):
        per = []
        for c in meta.corpus.unique():
            idx = np.flatnonzero((meta.corpus.values == c) & (meta.label.values == l))
            if len(idx):
                xc = x[idx]; per.append(xc.mean(0))
                r = (xc - xc.mean(0)).double(); cov += r.T @ r; n += len(idx)
        means[l] = torch.stack(per).mean(0) if per else torch.zeros(d)
    cov = cov / n
    cov = (1 - shrink) * cov + shrink * torch.diag(torch.diag(cov))
    prec = torch.linalg.inv(cov).float()
    wt = means @ prec
    b = -0.5 * (wt * means).sum(1)
    return lambda z: z @ wt.T + b


def consistent_features(x, meta, k):
    """The k features whose weakest training corpus still separates its classes best: per corpus, the
    ratio of between-class to within-class variance (ANOVA F), then the minimum over corpora."""
    scores = []
    for c in meta.corpus.unique():
        idx = np.flatnonzero(meta.corpus.values == c)
        xc, yc = x[idx], meta.label.values[idx]
        mu = xc.mean(0)
        between = sum((yc == l).sum() * (xc[yc == l].mean(0) - mu) ** 2 for l in np.unique(yc))
        within = sum(((xc[yc == l] - xc[yc == l].mean(0)) ** 2).sum(0) for l in np.unique(yc))
        scores.append(between / (within + 1e-8))
    return torch.stack(scores).min(0).values.argsort(descending=True)[:k]


def _msqrt(c, inverse=False):
    e, v = torch.linalg.eigh(c)
    e = e.clamp_min(1e-6)
    return (v * (e ** (-0.5 if inverse else 0.5))) @ v.T


def coral(xtr, xte, shrink):
    """CORAL (Sun et al. 2016): the test set whitened by its own covariance and coloured by the training
    covariance, both shrunk toward their diagonal by `shrink`; means stay as the standardisation left them."""
    def cov(x):
        c = torch.cov(x.T.double())
        return (1 - shrink) * c + shrink * torch.diag(torch.diag(c))
    mu = xte.mean(0)
    t = _msqrt(cov(xte), inverse=True) @ _msqrt(cov(xtr))
    return ((xte - mu).double() @ t).float() + mu


GROUPS = dict(loud=(0, 8), centroid=(8, 16), alpha=(16, 24), hammarberg=(24, 32), flux=(32, 40), peak=(40, 48),
              pitch=(48, 56), dpitch=(56, 64), mfcc=(64, 77), mfccsd=(77, 90), dmfcc=(90, 103), mel=(103, 143),
              melsd=(143, 183), rhythm=(183, 189))
SPEAKER_EMB = "runs/travel/speaker_ge2e.pt"  # experiments/travel/speaker_embed.py
CFG = {}
HS = []
BAG = []


def ari(a, b):
    """Adjusted Rand index of two labelings."""
    _, a = np.unique(a, return_inverse=True); _, b = np.unique(b, return_inverse=True)
    n = np.zeros((a.max() + 1, b.max() + 1)); np.add.at(n, (a, b), 1)
    comb = lambda x: (x * (x - 1) / 2).sum()
    s, sa, sb, tot = comb(n), comb(n.sum(1)), comb(n.sum(0)), len(a) * (len(a) - 1) / 2
    exp = sa * sb / tot
    return (s - exp) / (0.5 * (sa + sb) - exp + 1e-12)


def voice_clusters(emb, thr):
    """Average-linkage agglomerative clusters of unit speaker embeddings, cut at cosine distance `thr`."""
    from scipy.cluster.hierarchy import fcluster, linkage
    if len(emb) < 2:
        return np.zeros(len(emb), dtype=int)
    z = linkage(emb.numpy().astype(np.float64), method="average", metric="cosine")
    return fcluster(z, thr, criterion="distance")


def pick_threshold(emb, spk, corp, pool):
    """The cut with the best mean ARI against the true speakers over the training corpora."""
    grid = np.arange(0.10, 0.61, 0.025)
    scores = [np.mean([ari(voice_clusters(emb[corp == c], t), spk[corp == c]) for c in pool]) for t in grid]
    return float(grid[int(np.argmax(scores))])


def cluster_standardise(x, groups, min_size):
    """Per-cluster standardisation; clusters smaller than min_size by the whole set's statistics."""
    sizes = {g: (groups == g).sum() for g in np.unique(groups)}
    merged = np.array([g if sizes[g] >= min_size else -1 for g in groups])
    out = group_standardise(x, merged)
    if (merged == -1).any():
        idx = torch.as_tensor(np.flatnonzero(merged == -1))
        whole = group_standardise(x, np.zeros(len(x)))
        out[idx] = whole[idx]
    return out


def mood_shrunk(net, raw, spk, sets, cfg):
    """A speaker who keeps to one mood loses it to its own statistics (Urdu). The per-set heads' answers tell
    how many moods a speaker shows: h, the normalised entropy of the speaker's mean per-set probabilities. Its
    prior becomes k / h^mood_pow clips (capped at 1000), so a one-mood speaker is taken by the set's statistics."""
    with torch.no_grad():
        p = torch.softmax(net(group_standardise(raw, sets)), -1)
    ks = {}
    for g in np.unique(spk):
        q = p[torch.as_tensor(np.flatnonzero(spk == g))].mean(0)
        h = float(-(q * q.clamp_min(1e-9).log()).sum() / math.log(6))
        ks[g] = min(1000.0, cfg["mood_k"] / max(h, 1e-3) ** cfg.get("mood_pow", 4)); HS.append(h)
    print(f"  {sets[0]}: speaker mood entropy {np.percentile(HS, [10, 50, 90]).round(2)}", file=sys.stderr); HS.clear()
    with torch.no_grad():
        return net(shrunk_standardise(raw, spk, sets, ks))

def speaker_directions(x, groups, k):
    """(k, d): the top k directions of the spread of the groups' (speakers') means of x (corpus-standardised
    training clips): where voices differ, which a set of unknown speakers carries and a speaker's own
    statistics remove."""
    means = torch.stack([x[torch.as_tensor(np.flatnonzero(groups == g))].mean(0) for g in np.unique(groups)])
    return torch.linalg.svd(means - means.mean(0), full_matrices=False).Vh[:k]


def with_deviation(x, kind):
    """x (n, 189) standardised, with 14 more inputs (dev=1: each descriptor group's log mean square, a clip's
    distance from its speaker's or set's centre: neutral speech stays near it) or 1 (dev=all: over all 189)."""
    if kind == "all":
        extra = torch.log(x.pow(2).mean(1, keepdim=True) + 1e-3)
    else:
        extra = torch.stack([torch.log(x[:, a:b].pow(2).mean(1) + 1e-3) for a, b in GROUPS.values()], 1)
    return torch.cat([x, extra], 1)

def subspace(xtr, xte, y, mask, w, cfg, seed):
    """`subspace` heads, each on a random `sub_keep` share of the 14 descriptor groups (or, with subspace=loo, the 14
    heads that each leave one group out); their probabilities averaged (Ho 1998)."""
    names = list(GROUPS)
    g = np.random.default_rng(1000 + seed)
    if cfg["subspace"] == "loo":
        picks = [[n for n in names if n != out] for out in names]
    else:
        picks = [list(g.choice(names, int(round(cfg.get("sub_keep", 0.7) * len(names))), replace=False))
                 for _ in range(int(cfg["subspace"]))]
    p = 0
    for j, pick in enumerate(picks):
        cols = sorted(set().union(*(range(*GROUPS[n]) for n in pick)))
        net = train(xtr[:, cols], y, mask, w, cfg.get("hidden", 0), seed * 100 + j, cfg.get("epochs", 30),
                    cfg.get("wd", 1e-2), cfg.get("lr", 1e-3), cfg.get("dropout", 0.2))
        with torch.no_grad():
            p = p + torch.softmax(net(xte[:, cols]), -1)
    return torch.log(p / len(picks))

def neutral_reference(x):
    """Each clip (level-free) standardised by the statistics of the K read-speech voices (read_desc_all.pt,
    291 voices, all neutral) nearest it in the match features (CFG match: mfcc = MFCC 1-12 means, mfcc+pitch
    adds the median pitch), so that a lone clip is compared with neutral voices like its own."""
    ship = f"read_desc{CFG.get('read_file', '')}.pt"  # the shipped 820 clips (their descriptors' variant)
    rd = torch.load(f"runs/travel/{ship if CFG.get('ref_file') == 'ship' else 'read_desc_all.pt'}", weights_only=False)
    bank, voices = level_free(rd["x"]), rd["meta"].speaker.values
    if CFG.get("ref_pooled"):  # the bank's clips pooled: one mean and sd over all of them (as the product would)
        voices = np.array(["all"] * len(voices))
    cols = list(range(65, 77)) + ([51] if CFG.get("match", "mfcc") == "mfcc+pitch" else [])
    names = np.unique(voices)
    mus = torch.stack([bank[torch.as_tensor(voices == v)].mean(0) for v in names])
    var = torch.stack([bank[torch.as_tensor(voices == v)].var(0, correction=0) for v in names])
    key = mus[:, cols]
    km, ks = key.mean(0), key.std(0) + 1e-5
    x = level_free(x)
    d = torch.cdist((x[:, cols] - km) / ks, (key - km) / ks)
    nn_idx = d.topk(min(int(CFG.get("refk", 10)), len(names)), largest=False).indices  # (n, K)
    mu = mus[nn_idx].mean(1)
    v = var[nn_idx].mean(1) + mus[nn_idx].var(1, correction=0)  # the K voices' clips pooled
    return (x - mu) / (v.sqrt() + 1e-5)


def normed(x_all, tr, te, norm, spk, corp):
        if CFG.get("train_gain_db") and not CFG.get("_copy"):  # 4 copies of training at random gains
            g, outs = torch.Generator().manual_seed(1), []
            CFG["_copy"] = True
            try:
                for _ in range(4):
                    shift = (torch.rand(len(tr), 1, generator=g) * 2 - 1) * CFG["train_gain_db"] / 10 * math.log(10)
                    x = x_all.clone()
                    x[tr] = with_level(x_all[tr], shift)
                    xtr, xte = normed(x, tr, te, norm, spk, corp)
                    outs.append(xtr)
            finally:
                CFG["_copy"] = False
            return torch.cat(outs), xte
        xtr, xte = x_all[tr], x_all[te]
        if CFG.get("gain_db"):  # every test clip at a random gain of +-gain_db (a studio's or a phone's level)
            g = torch.Generator().manual_seed(0)
            db = (torch.rand(len(te), 1, generator=g) * 2 - 1) * CFG["gain_db"]
            xte = with_level(xte, db / 10 * math.log(10))  # log power
        if CFG.get("level_free"):
            xtr, xte = level_free(xtr), level_free(xte)
        if norm == "global":
            mu, sd = xtr.mean(0), xtr.std(0) + 1e-5
            xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
        elif norm == "corpus":
            xtr = group_standardise(xtr, corp[tr]); xte = group_standardise(xte, corp[te])
        elif norm == "speaker":
            xtr = group_standardise(xtr, spk[tr]); xte = group_standardise(xte, spk[te])
        elif norm == "spk_train_corpus_test":
            if CFG.get("spk_nap"):  # the directions in which training speakers' means differ, projected out
                u = speaker_directions(group_standardise(xtr, corp[tr]), spk[tr], int(CFG["spk_nap"]))
                xtr = group_standardise(xtr, spk[tr]); xte = group_standardise(xte, corp[te])
                xtr, xte = xtr - (xtr @ u.T) @ u, xte - (xte @ u.T) @ u
            else:
                xtr = group_standardise(xtr, spk[tr]); xte = group_standardise(xte, corp[te])
        elif norm == "cbal_spk_train_corpus_test":  # training speakers' statistics class-balanced
            lab = CFG["_labels"]
            xtr = balanced_standardise(xtr, spk[tr], lab[tr]); xte = group_standardise(xte, corp[te])
        elif norm == "cbal_spk_train_shrunk_test":
            lab = CFG["_labels"]
            xtr = balanced_standardise(xtr, spk[tr], lab[tr])
            xte = shrunk_standardise(xte, spk[te], corp[te], CFG.get("k", 10))
        elif norm in ("mixspk_train_corpus_test", "mixcorp_train_corpus_test"):  # random class mixes
            lab = CFG["_labels"]
            groups = spk[tr] if norm.startswith("mixspk") else corp[tr]
            xtr = random_mix_standardise(xtr, groups, lab[tr], CFG.get("copies", 8), CFG.get("alpha", 1.0))
            xte = group_standardise(xte, corp[te])
        elif norm == "spk_train_hybrid_test":  # per speaker (shrunk) only where the training speakers differ
            share = speaker_share(group_standardise(xtr, corp[tr]), spk[tr])  # between-speaker share, within corpora
            xtr = group_standardise(xtr, spk[tr])
            by_spk = shrunk_standardise(xte, spk[te], corp[te], CFG.get("k", 10))
            by_set = group_standardise(xte, corp[te])
            xte = torch.where(share > CFG.get("tau", 0.5), by_spk, by_set)
        elif norm == "spk_train_knn_test":  # each clip by its K nearest voices (GE2E), shrunk toward the set
            emb = torch.nn.functional.normalize(torch.load(SPEAKER_EMB)[te].float(), dim=1)
            nn_idx = (emb @ emb.T).topk(min(CFG.get("knn", 20), len(te)), dim=1).indices  # (n, K), itself too
            xtr = group_standardise(xtr, spk[tr])
            kk, prior = nn_idx.shape[1], CFG.get("k", 10)
            mu_s, var_s = xte.mean(0), xte.var(0)
            nb = xte[nn_idx]  # (n, K, d)
            mu = (kk * nb.mean(1) + prior * mu_s) / (kk + prior)
            var = (kk * nb.var(1, correction=0) + prior * var_s) / (kk + prior)
            xte = (xte - mu) / (var.sqrt() + 1e-5)
        elif norm == "spk_train_ref_test":
            mus = [xtr[spk[tr] == g].mean(0) for g in np.unique(spk[tr])]
            sds = [xtr[spk[tr] == g].std(0) for g in np.unique(spk[tr])]
            mu, sd = torch.stack(mus).mean(0), torch.stack(sds).mean(0)
            xtr = group_standardise(xtr, spk[tr]); xte = (xte - mu) / (sd + 1e-5)
        elif norm == "spk_train_pitch_test":  # the test set split in two by median pitch (voice register)
            xtr = group_standardise(xtr, spk[tr])
            f0 = x_all[te][:, 51]  # descriptor 51: median pitch in semitones
            lo, hi = f0.quantile(0.25), f0.quantile(0.75)
            for _ in range(20):  # 2-means in one dimension
                a = (f0 - lo).abs() > (f0 - hi).abs()
                lo, hi = f0[~a].mean(), f0[a].mean()
            xte = group_standardise(xte, a.numpy())
        elif norm == "spk_train_cluster_test":  # test set split by clustering voices (GE2E embeddings)
            emb = torch.load(SPEAKER_EMB)
            pool = [c for c in np.unique(corp[tr])]
            thr = CFG.get("thr") or pick_threshold(emb, spk, corp, pool)
            groups = voice_clusters(emb[te], thr)
            k = len(np.unique(groups)); true = len(np.unique(spk[te]))
            print(f"  {corp[te][0]}: cut {thr:.3f}, {k} clusters for {true} speakers, ARI {ari(groups, spk[te]):.2f}",
                  file=sys.stderr, flush=True)
            xtr = group_standardise(xtr, spk[tr])
            if CFG.get("k"):  # every cluster, its statistics shrunk toward the set's by a prior of k clips
                xte = shrunk_standardise(xte, groups, np.zeros(len(groups)), CFG["k"])
            else:
                xte = cluster_standardise(xte, groups, CFG.get("min_size", 10))
        elif norm in ("spk_train_shrunk_test", "shrunk"):  # speakers known, stats shrunk toward the set's
            k = CFG.get("k", 20)
            xtr = shrunk_standardise(xtr, spk[tr], corp[tr], k if norm == "shrunk" else 0)
            xte = shrunk_standardise(xte, spk[te], corp[te], k)
        elif norm == "spk_train_pitch_shrunk_test":  # two voice registers by median pitch, shrunk to the set
            xtr = group_standardise(xtr, spk[tr])
            f0 = x_all[te][:, 51]
            lo, hi = f0.quantile(0.25), f0.quantile(0.75)
            for _ in range(20):
                a = (f0 - lo).abs() > (f0 - hi).abs()
                lo, hi = f0[~a].mean(), f0[a].mean()
            xte = shrunk_standardise(xte, a.numpy(), np.zeros(len(a)), CFG.get("k", 10))
        elif norm == "ref_read":  # a lone clip against the read-speech voices nearest its own (all neutral)
            xtr, xte = neutral_reference(xtr), neutral_reference(xte)
        elif norm == "rank_spk_train_corpus_test":
            xtr = group_rank(xtr, spk[tr]); xte = group_rank(xte, corp[te])
        elif norm == "mix_train_corpus_test":
            xtr = torch.cat([group_standardise(xtr, spk[tr]), group_standardise(xtr, corp[tr])])
            xte = group_standardise(xte, corp[te])
        return xtr, xte


if __name__ == "__main__":
    name = sys.argv[1]
    cfg = {}
    for kv in sys.argv[2:]:
        k, v = kv.split("="); cfg[k] = json.loads(v) if v[0] in "[0123456789" else v
    CFG.update(cfg)
    meta, mean, std = load(name)
    CFG["_labels"] = meta.label.values
    df = run(meta, mean, std, cfg)
    s = df.groupby("test").agg(uar=("uar", "mean"), sd=("uar", "std"), uar6=("uar6", "mean"),
                               neutral=("r_neutral", "mean"))
    s = s.reindex(CORPORA)
    print(name, cfg)
    print(s.round(3).to_string())
    print(f"MEAN uar {s.uar.mean():.3f}  uar6 {s.uar6.mean():.3f}")
