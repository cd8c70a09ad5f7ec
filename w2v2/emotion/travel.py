"""The emotion model that travels: acoustic descriptors standardised per speaker or recording set, and
linear classifiers trained on several corpora at once.

Design choices (each measured leave-one-corpus-out in docs/travel.md):
- inputs are `w2v2.emotion.descriptors` (pitch, loudness, spectral shape, rhythm), not wav2vec 2.0
  embeddings: a 3.8M-parameter backbone pretrained on 12 h of English read speech carries its language
  and studio into its embeddings, and those did not carry over to unseen corpora (docs/travel.md);
- standardisation per group: at training time each speaker's clips by that speaker's statistics; at
  test time a recording set's clips by the set's (a competition test folder, an evaluated corpus,
  the files of one `predict` call), per speaker where speakers are known. What is left is how a clip
  differs from its speaker's or set's usual voice, which is what emotion changes;
- a speaker's statistics at test time are shrunk toward the set's, as if the speaker had
  `speaker_prior` more clips with the set's mean and variance: a speaker with few clips, or one who keeps
  to one or two emotions, is not standardised out of its emotion (docs/travel.md);
- a recording counts once in a set's or speaker's statistics however many windows it is cut into, and
  `min_group` counts recordings, not windows: one long file never becomes its own norm (its emotion
  would be standardised away), nor outweighs the short clips beside it;
- a set's answer is hedged with the lone-clip heads' by its size: N / (N + `set_prior`) from the set heads.
  On random sets of 10-50 clips of unseen corpora this beat the set heads alone (on sets of only two
  emotions, clip by clip stays best; experiments/travel/results/small_sets.txt);
- a lone clip (or a group of fewer than `min_group` clips) has no norm of its own: it goes to a second
  set of heads trained on descriptors standardised by fixed statistics: the neutral reference speech's
  where it is given (`clip_reference`), else the pooled training clips'. Standardising a lone clip by the
  training speakers' average instead put every clip of an unseen corpus in one class (docs/travel.md);
- the lone-clip heads take each descriptor relative to the clip's own level: a lone clip's gain is unknown
  (a quiet microphone is not a sad speaker). Leave-one-corpus-out, clip by clip: 0.392 against 0.397
  at the corpora's own levels, 0.392 against 0.370 with every clip at a random gain within +-20 dB
  (docs/travel.md). Groups keep absolute levels: a speaker's or set's clips share a recording chain more
  often than not, and there the level carries arousal;
- a corpus that lacks some of the six classes trains only on the classes it has: the absent classes'
  logits are left out of its softmax (unknown there, never a negative);
- each corpus weighs the same in the loss, and within a corpus each of its classes: a big corpus or a
  frequent class does not become the default answer;
- neutral reference speech (read speech of many voices and studios, `--neutral-data`) trains the set heads
  as "neutral" against all six classes, weighing `neutral_weight` of one emotional corpus: acted corpora
  hold few neutral clips of few voices, and without it the model rarely said "neutral" on unseen corpora
  (docs/travel.md). A lone clip is standardised by that speech's statistics (`clip_reference`): compared
  with how voices sound without emotion rather than with the training corpora's mix of emotions;
- `heads` linear classifiers from different seeds, their probabilities averaged;
- beside the set heads, `mel_nets` small CNNs on the rows' log-mel spectrograms, standardised by the same
  groups (`w2v2.emotion.melnet`): `mel_weight` of a grouped row's set answer. They learn the emotional
  corpora alone (with the neutral reference speech they answered "neutral" far too often), and a lone clip,
  with no group to standardise its bands by, is answered without them (docs/travel.md).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from w2v2.checkpoint import check_finite, tensor_bytes, write_dir
from w2v2.config import ranged
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.descriptors import FLOOR, level_free
from w2v2.emotion.melnet import Mel, MelNet, group_scales, melnet_probs, moments, train_melnet

CONFIG_FILE, WEIGHTS_FILE = "travel.json", "travel.safetensors"


@dataclass(frozen=True)
class TravelConfig:
    """How the travelling model trains (`finetune train --data A --data B ...`)."""

    epochs: int = ranged(30, 1)
    lr: float = ranged(1e-3, 0, lo_open=True)
    weight_decay: float = ranged(1e-2, 0)
    dropout: float = ranged(0.2, 0, 1, hi_open=True)  # on the standardised descriptors
    batch_size: int = ranged(128, 1)
    heads: int = ranged(3, 1)  # linear classifiers (seeds) of each kind, probabilities averaged
    min_group: int = ranged(10, 2)  # a smaller recording set is predicted clip by clip
    # a speaker's mean and variance are shrunk toward its recording set's by a prior worth this many clips
    # (0: each speaker by its own statistics alone, a speaker under min_group clips clip by clip)
    speaker_prior: float = ranged(10.0, 0)
    # a recording set of N recordings is answered N / (N + set_prior) by its set heads and the rest by the
    # lone-clip heads: a small set's statistics are noisy, and biased where it holds few emotions (0: the set
    # heads alone; a whole corpus, N in the hundreds, is hardly moved)
    set_prior: float = ranged(10.0, 0)
    # the lone-clip heads see each clip's descriptors relative to its own level (`level_free`): a lone
    # clip's recording gain is unknown, and its answer does not move with it (False: absolute levels)
    level_free_clips: bool = True
    # neutral reference speech (read speech of many voices, `--neutral-data`): all its clips together weigh
    # this much of one emotional corpus in the set heads' loss, as "neutral" against all six classes (0: unused)
    neutral_weight: float = ranged(0.2, 0)
    # the lone-clip heads standardise a clip by the neutral reference speech's statistics where it is given
    # ("neutral": how voices sound when they carry no emotion), else by the emotional training pool's ("pool")
    clip_reference: str = "neutral"
    # the descriptors' log floor (w2v2.emotion.descriptors.FLOOR), recorded so that a model is always given
    # the descriptors it was trained on (a model saved without it: 1e-10)
    log_floor: float = ranged(FLOOR, 0, lo_open=True)
    # small CNNs on log-mel spectrograms standardised as the descriptors are (`w2v2.emotion.melnet`), a second
    # view beside the set heads (0: descriptors alone; a model saved without them has none)
    mel_nets: int = ranged(1, 0)
    mel_weight: float = ranged(0.3, 0, 1)  # the CNNs' share of a grouped row's set answer
    mel_epochs: int = ranged(20, 1)
    seed: int = ranged(0, 0)


def group_rows(groups: Sequence[Hashable]) -> list[torch.Tensor]:
    """The row indices of each distinct group, in order of first appearance."""
    index: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        index.setdefault(g, []).append(i)
    return [torch.tensor(rows) for rows in index.values()]


def _weighted_stats(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean and (population) variance of rows x (n, d) with weights w (n,)."""
    w = (w / w.sum())[:, None]
    mu = (w * x).sum(0)
    return mu, (w * (x - mu) ** 2).sum(0)


def shrunk_standardise(x: torch.Tensor, groups: Sequence[Hashable], prior: float,
                       weights: torch.Tensor | None = None) -> torch.Tensor:
    """Rows x (n, d) of one recording set standardised by their group's mean and variance shrunk toward the
    whole set's: (n_g * group + prior * set) / (n_g + prior). weights (n,): what each row counts for (a
    window of a recording cut into k windows: 1/k, so that every recording counts once; default 1); n_g is
    the group's total weight. prior=0 is `standardise`."""
    if prior == 0:
        return standardise(x, groups, weights)
    w = torch.ones(len(x)) if weights is None else weights.float()
    out = torch.empty_like(x)
    mu_set, var_set = _weighted_stats(x, w)
    for rows in group_rows(groups):
        n = float(w[rows].sum())
        mu_g, var_g = _weighted_stats(x[rows], w[rows])
        mu = (n * mu_g + prior * mu_set) / (n + prior)
        var = (n * var_g + prior * var_set) / (n + prior)
        out[rows] = (x[rows] - mu) / var.sqrt().clamp(min=1e-5)
    return out


def standardise(x: torch.Tensor, groups: Sequence[Hashable], weights: torch.Tensor | None = None) -> torch.Tensor:
    """Rows x (n, d) standardised by their group's mean and standard deviation (rows weighted by `weights`)."""
    w = torch.ones(len(x)) if weights is None else weights.float()
    out = torch.empty_like(x)
    for rows in group_rows(groups):
        mu, var = _weighted_stats(x[rows], w[rows])
        out[rows] = (x[rows] - mu) / var.sqrt().clamp(min=1e-5)
    return out


class TravelModel(nn.Module):
    """Linear heads over standardised descriptors: `set_heads` for rows standardised by their group (speaker,
    recording set), `clip_heads` for rows standardised by the pooled training statistics, and `mel_nets` (CNNs on
    grouped rows' log-mel spectrograms). `probs` takes raw descriptors (and spectrograms) and their groups and
    picks."""

    pool_mean: torch.Tensor
    pool_std: torch.Tensor

    def __init__(self, dim: int, cfg: TravelConfig = TravelConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("pool_mean", torch.zeros(dim))
        self.register_buffer("pool_std", torch.ones(dim))
        self.set_heads = nn.ModuleList(nn.Linear(dim, len(EMOTIONS)) for _ in range(cfg.heads))
        self.clip_heads = nn.ModuleList(nn.Linear(dim, len(EMOTIONS)) for _ in range(cfg.heads))
        self.mel_nets = nn.ModuleList(MelNet(classes=len(EMOTIONS)) for _ in range(cfg.mel_nets))

    def clip_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the lone-clip heads standardise: the descriptors, relative to the clip's level if configured."""
        return level_free(x) if self.cfg.level_free_clips else x

    @staticmethod
    def mean_softmax(heads: nn.ModuleList, z: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.softmax(head(z), -1) for head in heads]).mean(0)

    def plan(self, groups: Sequence[Hashable | None] | None, recordings: Sequence[Hashable] | None = None,
             rows: int | None = None) -> GroupPlan:
        """How `probs` takes rows of these groups and recordings (the one place its rules are decided). groups:
        each row's speaker (or one name for the rows of unknown speakers), None for a row taken alone; the rows
        with a group form one recording set. recordings: each row's recording (the windows of one file share
        it; default: every row its own), so that a recording counts once in the statistics and in the counts,
        however long it is. Every row is taken alone where the set holds fewer than `min_group` recordings,
        and so are a group's rows where its n recordings have n + speaker_prior < min_group."""
        n = rows if rows is not None else len(groups or recordings or [])
        recs = list(range(n)) if recordings is None else list(recordings)
        if len(recs) != n:
            raise ValueError(f"recordings: {len(recs)} entries for {n} rows")
        grouped = [i for i, g in enumerate(groups or []) if g is not None]
        names = [groups[i] for i in grouped] if groups is not None else []
        per_recording = Counter(recs)
        weights = torch.tensor([1.0 / per_recording[recs[i]] for i in grouped])
        size = len({recs[i] for i in grouped})  # the set's recordings
        members = group_rows(names)
        counts = [float(weights[m].sum()) for m in members]  # each group's recordings
        if size < self.cfg.min_group:
            kept: list[torch.Tensor] = []
        else:
            kept = [m for m, k in zip(members, counts, strict=True)
                    if k + self.cfg.speaker_prior >= self.cfg.min_group - 1e-6]
        return GroupPlan(grouped, names, weights, kept, size, len(members), len(members) - len(kept) if kept else 0,
                         size / (size + self.cfg.set_prior) if kept else 0.0, self.cfg.min_group,
                         self.cfg.speaker_prior)

    @property
    def reads_mels(self) -> bool:
        """Whether `probs` needs each row's log-mel spectrogram (`w2v2.emotion.melnet.log_mel`) beside its
        descriptors."""
        return len(self.mel_nets) > 0

    @torch.no_grad()
    def probs(self, x: torch.Tensor, groups: Sequence[Hashable | None] | None = None,
              recordings: Sequence[Hashable] | None = None, mels: Sequence[Mel] | None = None) -> torch.Tensor:
        """(n, 6) probabilities of raw descriptors x (n, d) of rows in these groups and recordings (`plan`): the
        lone-clip heads' for rows taken alone; for the rest, their group's statistics shrunk toward the set's
        (`speaker_prior`), the set answer weighing `GroupPlan.set_weight` against the lone-clip heads. The set
        answer is the set heads', and where the model has CNNs (`reads_mels`: then `mels` (n,), each row's
        log-mel spectrogram, is required) `mel_weight` of it is theirs, on the spectrograms standardised by the
        same groups."""
        self.eval()
        if self.reads_mels and (mels is None or len(mels) != len(x)):
            raise ValueError("this travelling model also reads log-mel spectrograms: pass mels, one per row "
                             "(w2v2.emotion.melnet.log_mel)")
        x = x.float()
        out = self.mean_softmax(self.clip_heads, (self.clip_input(x) - self.pool_mean) / self.pool_std)
        plan = self.plan(groups, recordings, len(x))
        if plan.kept:
            z = shrunk_standardise(x[plan.grouped], plan.names, self.cfg.speaker_prior, plan.weights)  # the set
            keep = torch.cat(plan.kept)
            rows = torch.tensor(plan.grouped)[keep]
            answer = self.mean_softmax(self.set_heads, z[keep])
            if self.reads_mels and mels is not None:
                grouped = [mels[i] for i in plan.grouped]
                m1, m2 = moments(grouped)
                mean, sd = group_scales(m1, m2, plan.names, self.cfg.speaker_prior, plan.weights)
                nets = melnet_probs(self.mel_nets, [grouped[i] for i in keep.tolist()], mean[keep], sd[keep])
                answer = (1 - self.cfg.mel_weight) * answer + self.cfg.mel_weight * nets
            w = plan.set_weight
            out[rows] = w * answer + (1 - w) * out[rows]
        return out


@dataclass(frozen=True, eq=False)
class GroupPlan:
    """How `TravelModel.probs` takes one call's rows (`TravelModel.plan`), and the same in words (`words`)."""

    grouped: list[int]  # the rows with a group: the recording set, whose statistics every group is shrunk toward
    names: list  # their groups
    weights: torch.Tensor  # what each grouped row counts for: 1 / the windows of its recording
    kept: list[torch.Tensor]  # indices into `grouped` of each group standardised as one (empty: every row alone)
    recordings: int  # the set's recordings (with a group)
    groups: int  # distinct groups among them
    groups_alone: int  # groups too small to stand (n + speaker_prior < min_group): their rows each alone
    set_weight: float  # the set heads' share of a kept row's answer: N / (N + set_prior); the rest alone
    min_group: int
    speaker_prior: float

    def words(self, what: str = "clips") -> str:
        """The plan in one phrase, `what` naming the recordings ("clips", "files")."""
        if not self.kept:
            if not self.recordings:
                return f"each of the {what} alone (none with speech)"
            return (f"each of the {what} alone ({self.recordings} with speech; a recording set needs "
                    f"{self.min_group})")

        def share(group: str) -> str:
            return f"each answer {self.set_weight:.2f} from {group}, {1 - self.set_weight:.2f} from the clip alone"

        if self.groups == 1:
            return f"the {self.recordings} {what} with speech as one recording set ({share('the set')})"
        prior = (f", each speaker's statistics shrunk toward the set's by a prior of {self.speaker_prior:g} clips"
                 if self.speaker_prior else ", each by its own statistics")
        stood = self.groups - self.groups_alone
        alone = (f"; {self.groups_alone} with fewer than {self.min_group} {what}, each of those alone"
                 if self.groups_alone else "")
        return (f"per speaker: {stood} speaker{'s' if stood != 1 else ''} in a set of {self.recordings} {what} "
                f"with speech{prior}{alone} ({share('its speaker')})")


def class_masks(labels: Sequence[int], corpora: Sequence[str]) -> torch.Tensor:
    """(n, 6) bool: the classes each row's corpus has (its softmax is over those alone)."""
    present: dict[str, set[int]] = {}
    for label, corpus in zip(labels, corpora, strict=True):
        present.setdefault(corpus, set()).add(label)
    masks = torch.zeros(len(labels), len(EMOTIONS), dtype=torch.bool)
    for i, corpus in enumerate(corpora):
        masks[i, sorted(present[corpus])] = True
    return masks


def balanced_weights(labels: Sequence[int], corpora: Sequence[str]) -> torch.Tensor:
    """(n,) loss weights, mean 1: every corpus the same total, and within a corpus every class it has."""
    cells: dict[tuple[str, int], int] = {}
    classes: dict[str, set[int]] = {}
    for label, corpus in zip(labels, corpora, strict=True):
        cells[corpus, label] = cells.get((corpus, label), 0) + 1
        classes.setdefault(corpus, set()).add(label)
    w = torch.tensor([1.0 / (len(classes[c]) * cells[c, y]) for y, c in zip(labels, corpora, strict=True)])
    return w / w.mean()


def voice_groups(voices: Sequence[str]) -> list[str]:
    """The read speech's standardisation groups: each voice with two clips or more is its own; the voices of
    one clip are standardised together (alone, a clip would standardise to zeros and teach nothing)."""
    counts = Counter(voices)
    return [v if counts[v] > 1 else "voices of one clip" for v in voices]


def fit(x: torch.Tensor, labels: Sequence[int], corpora: Sequence[str], speakers: Sequence[str],
        cfg: TravelConfig = TravelConfig(), neutral: torch.Tensor | None = None,
        neutral_speakers: Sequence[str] = (), mels: Sequence[Mel] | None = None,
        progress: Callable[[], None] | None = None) -> TravelModel:
    """Train on raw descriptors x (n, d) of clips with their labels, corpus names and speaker ids (speaker
    ids must be unique across corpora: prefix them with the corpus). `neutral` (m, d): descriptors of neutral
    reference speech (read speech), with `neutral_speakers` (m,) its groups: the set heads also learn them as
    "neutral" against all six classes, together weighing `cfg.neutral_weight` of one corpus. The lone-clip heads
    do not learn them (they answered "neutral" often enough); with `cfg.clip_reference` "neutral" their
    statistics are the reference a lone clip is standardised by (docs/travel.md). With `cfg.mel_nets`, `mels`
    (n,) are the clips' log-mel spectrograms, on which the CNNs train (per speaker, without the neutral
    reference speech); `progress` is called after each of their epochs."""
    if len({len(x), len(labels), len(corpora), len(speakers)}) != 1:
        raise ValueError("x, labels, corpora and speakers must have one entry per clip")
    if cfg.mel_nets and (mels is None or len(mels) != len(x)):
        raise ValueError(f"mel_nets={cfg.mel_nets}: pass mels, one log-mel spectrogram per clip")
    if cfg.clip_reference not in ("neutral", "pool"):
        raise ValueError(f"clip_reference={cfg.clip_reference!r}: 'neutral' or 'pool'")
    x = x.float()
    model = TravelModel(x.shape[1], cfg)
    pooled = model.clip_input(x)
    reference = model.clip_input(neutral.float()) if neutral is not None and len(neutral) > 1 and \
        cfg.clip_reference == "neutral" else pooled
    model.pool_mean, model.pool_std = reference.mean(0), reference.std(0, unbiased=False).clamp(min=1e-5)
    y = torch.as_tensor(list(labels))
    masks, weights = class_masks(labels, corpora), balanced_weights(labels, corpora)
    clip_z = (pooled - model.pool_mean) / model.pool_std
    set_z, set_y, set_masks, set_w = standardise(x, speakers), y, masks, weights
    if neutral is not None and len(neutral) and cfg.neutral_weight > 0:
        if len(neutral) != len(neutral_speakers):
            raise ValueError("neutral and neutral_speakers must have one entry per clip")
        m = len(neutral)
        share = cfg.neutral_weight * float(weights.sum()) / len(set(corpora))  # of one corpus's total
        set_z = torch.cat([set_z, standardise(neutral.float(), voice_groups(neutral_speakers))])
        set_y = torch.cat([y, torch.full((m,), EMOTIONS.index("neutral"))])
        set_masks = torch.cat([masks, torch.ones(m, len(EMOTIONS), dtype=torch.bool)])
        set_w = torch.cat([weights, torch.full((m,), share / m)])
    for k, head in enumerate(model.set_heads):
        train_head(head, set_z, set_y, set_masks, set_w, cfg, seed=cfg.seed + k)
    if cfg.mel_nets and mels is not None:  # each clip's spectrogram standardised by its speaker's bands; not the
        # neutral reference speech: learnt by the CNNs too, it made them answer "neutral" far too often (docs/travel.md)
        m1, m2 = moments(mels)
        mean, sd = group_scales(m1, m2, speakers)
        for k in range(cfg.mel_nets):
            model.mel_nets[k] = train_melnet([m.spec for m in mels], mean, sd, y, masks, weights, cfg.mel_epochs,
                                             seed=cfg.seed + k, progress=progress)
    for k, head in enumerate(model.clip_heads):
        train_head(head, clip_z, y, masks, weights, cfg, seed=cfg.seed + k)
    check_finite(model, "the travelling model")
    return model.eval()


def train_head(head: nn.Module, z: torch.Tensor, y: torch.Tensor, masks: torch.Tensor, weights: torch.Tensor,
               cfg: TravelConfig, seed: int) -> None:
    """AdamW on the class-masked, corpus-and-class-weighted cross-entropy of one linear head."""
    torch.manual_seed(seed)
    head.reset_parameters()  # type: ignore[operator]
    dropout = nn.Dropout(cfg.dropout)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    order = torch.Generator().manual_seed(seed)
    for _ in range(cfg.epochs):
        for batch in torch.randperm(len(z), generator=order).split(cfg.batch_size):
            logits = head(dropout(z[batch])).masked_fill(~masks[batch], float("-inf"))  # absent: not a negative
            loss = (F.cross_entropy(logits, y[batch], reduction="none") * weights[batch]).sum() / weights[batch].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()


def save_travel(model: TravelModel, directory: str | Path, meta: dict) -> None:
    """The model's weights (safetensors) and travel.json (config, classes, `meta`), written whole or not at all."""
    directory = Path(directory)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    info = {"kind": "travel", "labels": list(EMOTIONS), "dim": model.pool_mean.numel(), "config": asdict(model.cfg),
            **meta}

    def write(tmp: Path) -> None:
        save_file(state, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(info, indent=2))

    write_dir(directory, write, tensor_bytes(state), "An earlier model there, if any, is intact")


def is_travel(directory: str | Path) -> bool:
    return (Path(directory) / CONFIG_FILE).is_file()


def load_travel(directory: str | Path) -> tuple[TravelModel, dict]:
    """(model, travel.json) of a folder `save_travel` wrote."""
    directory = Path(directory)
    info = json.loads((directory / CONFIG_FILE).read_text())
    if list(info.get("labels", [])) != list(EMOTIONS):
        raise ValueError(f"{directory}: its classes are {info.get('labels')}, not {', '.join(EMOTIONS)}")
    # a model saved before level_free_clips existed standardised absolute levels
    # and with the descriptors' floor of before log_floor existed
    model = TravelModel(int(info["dim"]), TravelConfig(**{"level_free_clips": False, "log_floor": 1e-10,
                                                          "mel_nets": 0, **info["config"]}))
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    return model.eval(), info
