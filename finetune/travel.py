"""`python -m finetune train --data A --data B ...`: the travelling model, trained on several corpora at once,
and measured leave-one-corpus-out (`--test-corpus NAME` or `all`).

Reads top to bottom: load every corpus (any layout; a corpus column kept through the run) -> the
descriptors of every clip (one pass; cached in the run folder) -> for each held-out corpus: fit on the
others with each seed and score the unseen corpus (all of it; UAR over its own classes) -> fit on all the
corpora and save the model. The model itself is `w2v2.emotion.travel` (docs/travel.md: what it is,
what was measured, what lost).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from finetune.metrics import classification_metrics
from finetune.outputs import OutputError, check_run_folder, remove_outputs
from w2v2.checkpoint import atomic_write
from w2v2.data.datasets import Item, check_files, load_dataset, speech_items
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.descriptors import clip_descriptors
from w2v2.emotion.melnet import Mel, log_mel
from w2v2.emotion.travel import TravelConfig, TravelModel, fit, save_travel
from w2v2.emotion.windows import AudioCache
from w2v2.training.progress import progress_bar

DESCRIPTORS = "descriptors.pt"  # the run's cache: (path, size, mtime) -> descriptors
MELS = "mels.pt"  # and -> log-mel spectrograms (a model with CNNs)


@dataclass(frozen=True)
class Corpus:
    name: str
    items: list[Item]

    @property
    def classes(self) -> list[int]:
        return sorted({int(it.label) for it in self.items if it.label is not None})


GENERIC_TABLES = {"labels", "train", "data", "metadata", "annotations", "index", "manifest"}  # say nothing of it


def corpus_spec(text: str) -> tuple[str, Path]:
    """NAME=PATH or PATH (a folder named after itself, a CSV after its file, or after its folder where the file
    name is generic like labels.csv; a -16k suffix dropped) -> (name, path)."""
    name, sep, path = text.partition("=")
    if sep and name and "/" not in name:
        return name, Path(path)
    p = Path(text)
    if p.suffix.lower() in (".csv", ".tsv", ".tab"):
        return (p.parent.name if p.stem.lower() in GENERIC_TABLES else p.stem).removesuffix("-16k"), p
    return p.name.removesuffix("-16k"), p


def readable(name: str, items: list[Item], skip_bad: bool) -> list[Item]:
    """The items whose files exist and decode; the others named (the first five) in a ValueError, or with
    `skip_bad` in one printed line and left out."""
    good, bad = check_files(items)
    if bad:
        listed = "; ".join(f"{it.path}: {problem}" for it, problem in bad[:5]) + (" ..." if len(bad) > 5 else "")
        if not skip_bad:
            raise ValueError(f"{name}: {len(bad)} of {len(items)} clips are missing or unreadable ({listed}): "
                             "fix or remove them, or pass --skip-bad to leave them out")
        print(f"--skip-bad: {name} without {len(bad)} missing or unreadable clip(s) ({listed})")
    return good


def load_corpora(specs: list[str], layout: str | None = None, skip_bad: bool = False) -> list[Corpus]:
    """Each --data as a named corpus of labelled clips; speakers prefixed with the corpus (unique across them).
    Missing or unreadable clips are named before any work and stop the run, unless `skip_bad` leaves them out."""
    corpora: list[Corpus] = []
    for spec in specs:
        name, path = corpus_spec(spec)
        if name in {c.name for c in corpora}:
            raise ValueError(f"two --data are named {name!r}: name them NAME=PATH")
        good = readable(name, load_dataset(path, layout).train, skip_bad)
        items = [replace(it, speaker=f"{name}:{it.speaker}" if it.speaker else None) for it in good]
        corpora.append(Corpus(name, items))
    return corpora


NEUTRAL_SPEECH = "neutral speech"  # the corpus name of --neutral-data (never scored, never held out)


def load_neutral(specs: list[str], skip_bad: bool = False) -> Corpus | None:
    """Every --neutral-data (read speech: a folder, a manifest or a CSV with path[,speaker]) as one corpus of
    clips labelled neutral; speakers prefixed with the source's name, a source without speakers one group."""
    items: list[Item] = []
    names: set[str] = set()
    for spec in specs:
        name, path = corpus_spec(spec)
        if name in names:
            raise ValueError(f"two --neutral-data are named {name!r}: name them NAME=PATH")
        names.add(name)
        good = readable(f"--neutral-data {name}", speech_items(path, EMOTIONS.index("neutral")), skip_bad)
        items += [replace(it, speaker=f"{name}:{it.speaker or '*'}") for it in good]
    if specs and not items:
        raise ValueError(f"--neutral-data: none of the clips of {', '.join(specs)} could be read")
    once: dict[Path, Item] = {}
    for it in items:  # a clip named twice (two sources, or twice in a manifest) would weigh twice: once each
        once.setdefault(it.path.resolve(), it)
    if len(once) < len(items):
        warnings.warn(f"--neutral-data: {len(items) - len(once)} clip(s) given more than once (e.g. in two "
                      f"sources): each used once, with its first source's voice", stacklevel=2)
    return Corpus(NEUTRAL_SPEECH, list(once.values())) if items else None


def descriptors(corpora: list[Corpus], cache_file: Path, floor: float, mel_file: Path | None = None,
                without_mels: Collection[str] = ()
                ) -> tuple[list[Corpus], dict[str, torch.Tensor], dict[str, list[Mel]]]:
    """(the corpora without clips that could not be decoded (warned), per corpus (n, d) descriptors of their
    clips at log floor `floor`, per corpus their log-mel spectrograms where `mel_file` is given (else none;
    none for the corpora named in `without_mels` either)),
    cached in `cache_file` and `mel_file` by path, size, modification time and floor (a re-run decodes
    nothing). The spectrograms are kept in half precision (a corpus of 7,000 clips: 0.25 GB)."""
    cache: dict[str, torch.Tensor] = torch.load(cache_file) if cache_file.is_file() else {}
    mel_cache: dict[str, Mel] = {}
    if mel_file is not None and mel_file.is_file():
        mel_cache = {k: Mel(*v) for k, v in torch.load(mel_file).items()}
    total = sum(len(c.items) for c in corpora)
    kept, out, mels = [], {}, {}
    with progress_bar(total=total, desc="descriptors", unit="clip", mininterval=5) as bar:
        for corpus in corpora:
            items, rows, specs = [], [], []
            with_mels = mel_file is not None and corpus.name not in without_mels
            for it in corpus.items:
                key = f"{clip_key(it.path)}|floor={floor:g}"
                mel_key = clip_key(it.path)
                wanted = key not in cache or (with_mels and mel_key not in mel_cache)
                if wanted and (wave := AudioCache([it])[0]) is not None:  # None: warned, left out
                    cache[key] = clip_descriptors(wave, floor)
                    if with_mels:
                        mel = log_mel(wave)
                        mel_cache[mel_key] = Mel(mel.spec.half(), mel.loud)
                if key in cache and (not with_mels or mel_key in mel_cache):
                    items.append(it)
                    rows.append(cache[key])
                    if with_mels:
                        m = mel_cache[mel_key]
                        specs.append(Mel(m.spec.float(), m.loud))
                bar.update()
            kept.append(Corpus(corpus.name, items))
            out[corpus.name] = torch.stack(rows)
            mels[corpus.name] = specs
    atomic_write(cache_file, lambda tmp: torch.save(cache, tmp))
    if mel_file is not None:
        atomic_write(mel_file, lambda tmp: torch.save({k: tuple(v) for k, v in mel_cache.items()}, tmp))
    return kept, out, mels


TRAVEL_OUTPUTS = ("model", "metrics.json", "loco.csv", "loco_summary.csv")  # descriptors.pt, mels.pt: caches, kept


def earlier_outputs(run: Path, overwrite: bool) -> list[Path]:
    """An earlier travelling run's outputs in `run` (what `overwrite` removes); OutputError for a file as
    --run, or for an earlier run without `overwrite`. Touches nothing."""
    check_run_folder(run)
    old = [run / name for name in TRAVEL_OUTPUTS if (run / name).exists()]
    if old and not overwrite:
        raise OutputError(f"--run {run}: already holds a run ({', '.join(p.name for p in old)}); pass --overwrite "
                          "to replace it, or choose another --run")
    return old


def clip_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def groups_of(corpus: Corpus) -> list[str]:
    """Training normalisation groups: speakers where the corpus has them, else the corpus as one group."""
    return [it.speaker or f"{corpus.name}:*" for it in corpus.items]


def fit_corpora(corpora: list[Corpus], feats: dict[str, torch.Tensor], cfg: TravelConfig,
                neutral: Corpus | None = None, mels: dict[str, list[Mel]] | None = None, desc: str = "CNN"
                ) -> TravelModel:
    x = torch.cat([feats[c.name] for c in corpora])
    labels = [int(it.label) for c in corpora for it in c.items]  # type: ignore[arg-type]  # training items
    names = [c.name for c in corpora for _ in c.items]
    clip_mels = [m for c in corpora for m in mels[c.name]] if mels and cfg.mel_nets else None
    with progress_bar(total=cfg.mel_nets * cfg.mel_epochs, desc=desc, unit="epoch", leave=False,
                      disable=not cfg.mel_nets) as bar:
        return fit(x, labels, names, [g for c in corpora for g in groups_of(c)], cfg,
                   feats[neutral.name] if neutral else None,
                   [str(it.speaker) for it in neutral.items] if neutral else [], clip_mels, bar.update)


NORMALISATIONS = ("set", "speaker", "clip")  # how an unseen corpus is scored (see `score`)


def score(model: TravelModel, corpus: Corpus, x: torch.Tensor, normalise: str, mels: list[Mel] | None = None
          ) -> dict:
    """Metrics on a whole corpus taken as one recording set ("set"), per speaker ("speaker"), or clip by clip
    ("clip", as the web app sees one upload): argmax over the corpus's own classes."""
    groups = {"set": ["set"] * len(corpus.items), "speaker": [it.speaker or "set" for it in corpus.items],
              "clip": None}[normalise]
    probs = model.probs(x, groups, mels=mels if model.reads_mels else None)
    classes = corpus.classes
    pred = [classes[i] for i in probs[:, classes].argmax(1).tolist()]
    m = classification_metrics([int(it.label) for it in corpus.items], pred)  # type: ignore[arg-type]
    return {"uar": m["uar"], "accuracy": m["accuracy"], "n": m["n"], "classes": [EMOTIONS[c] for c in classes],
            "per_class_recall": {k: v for k, v in m["per_class_recall"].items() if v is not None},
            "confusion_matrix": m["confusion_matrix"]}


def leave_one_out(corpora: list[Corpus], unseen: list[Corpus], feats: dict[str, torch.Tensor], cfg: TravelConfig,
                  seeds: int, neutral: Corpus | None = None, mels: dict[str, list[Mel]] | None = None,
                  shared: dict[int, TravelModel] | None = None) -> pd.DataFrame:
    """One row per (unseen corpus, seed, normalisation): UAR and per-class recall on a corpus that no model
    trained on: a training corpus held out (the model trains on the others), or a test-only corpus. The
    neutral reference speech, if any, trains every model (it holds no emotion to score). The models fitted
    on every training corpus (the test-only corpora's) are left in `shared` by seed."""
    shared = {} if shared is None else shared
    rows = []
    for test in unseen:
        name = test.name
        train = [c for c in corpora if c.name != name]
        for seed in range(seeds):
            whole = len(train) == len(corpora)  # a test-only corpus: every training corpus, fitted once a seed
            if whole and seed in shared:
                model = shared[seed]
            else:
                model = fit_corpora(train, feats, replace(cfg, seed=cfg.seed + seed * cfg.heads), neutral, mels,
                                    f"CNN without {name}, seed {seed}" if not whole else f"CNN, seed {seed}")
                if whole:
                    shared[seed] = model
            for normalise in NORMALISATIONS:
                m = score(model, test, feats[name], normalise, mels[name] if mels else None)
                rows.append({"test_corpus": name, "seed": seed, "normalise": normalise,
                             "trained_on": "+".join(c.name for c in train), "uar": m["uar"], "n": m["n"],
                             **{f"recall_{k}": v for k, v in m["per_class_recall"].items()}})
            print(f"  {name} unseen, seed {seed}: UAR " + ", ".join(
                f"{r['uar']:.3f} ({r['normalise']})" for r in rows[-len(NORMALISATIONS):]))
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds of UAR and each class's recall, per held-out corpus and normalisation."""
    recall = [c for c in df.columns if c.startswith("recall_")]
    g = df.groupby(["normalise", "test_corpus"], sort=False)
    out = g[["uar", *recall]].mean()
    out.insert(1, "uar_sd", g["uar"].std().fillna(0.0))
    return out.reset_index()


def train_travel(specs: list[str], run: Path, test_corpus: str | None, cfg: TravelConfig | None = None,
                 seeds: int = 3, layout: str | None = None, test_specs: list[str] | None = None,
                 skip_bad: bool = False, dry_run: bool = False, overwrite: bool = False,
                 neutral_specs: list[str] | None = None) -> dict:
    """Train on the corpora of `specs` (and the neutral reference speech of `neutral_specs`); score held-out
    ones (`test_corpus`: a name or all) and the test-only corpora of `test_specs`; save the model trained on
    all of `specs` (`dry_run`: the plan alone). An earlier run in `run` is refused, or with `overwrite` its
    outputs are removed, once the data have been checked."""
    start = time.perf_counter()
    old = earlier_outputs(run, overwrite)
    cfg = cfg or TravelConfig()
    corpora = load_corpora(specs, layout, skip_bad)
    test_only = load_corpora(test_specs or [], layout, skip_bad)
    neutral = load_neutral(neutral_specs or [], skip_bad)
    names = [c.name for c in corpora]
    held_out = names if test_corpus == "all" else [test_corpus] if test_corpus else []
    if any(h not in names for h in held_out):
        raise ValueError(f"--test-corpus {test_corpus}: not one of the corpora ({', '.join(names)}, or all)")
    if clash := {c.name for c in test_only} & set(names):
        raise ValueError(f"{', '.join(sorted(clash))}: given both as --data and --test-data")
    if neutral and NEUTRAL_SPEECH in names + [c.name for c in test_only]:
        raise ValueError(f"{NEUTRAL_SPEECH!r} names the --neutral-data clips: name the corpus otherwise (NAME=PATH)")
    scored = held_out + [c.name for c in test_only]
    print(f"travelling model on {len(corpora)} corpora: " + ", ".join(
        f"{c.name} ({len(c.items)} clips, {', '.join(EMOTIONS[k] for k in c.classes)})" for c in corpora))
    if neutral:
        voices = len({it.speaker for it in neutral.items})
        print(f"neutral reference speech: {len(neutral.items)} clip(s) of {voices} voice(s) (a source without "
              f"speakers is one voice), learnt as neutral by the set heads of every fit, together weighing "
              f"{cfg.neutral_weight:g} of one corpus (travel.neutral_weight)"
              + ("; its statistics standardise a lone clip (travel.clip_reference)"
                 if cfg.clip_reference == "neutral" else ""))
    print("plan: descriptors of every clip" + (f", and its log-mel spectrogram for {cfg.mel_nets} CNN(s) of "
                                                 f"{cfg.mel_epochs} epochs a fit (travel.mel_nets=0: descriptors alone)"
                                                 if cfg.mel_nets else "")
          + "; each corpus weighs the same, and each class within it; classes a "
          "corpus lacks are left out of its loss; standardised per speaker (per corpus where speakers are unknown)"
          + (f"; scored unseen: {', '.join(scored)} ({seeds} seed{'s' if seeds != 1 else ''})" if scored else ""))
    if dry_run:
        print(f"--dry-run: nothing computed or written (the run would write {run})")
        return {"corpora": {c.name: len(c.items) for c in corpora}, "dry_run": True}
    remove_outputs(run, old)  # only now, with every corpus read and checked, is the earlier run removed
    run.mkdir(parents=True, exist_ok=True)
    # the neutral reference speech: descriptors alone (the CNNs do not learn it)
    every, feats, mels = descriptors(corpora + test_only + ([neutral] if neutral else []), run / DESCRIPTORS,
                                     cfg.log_floor, run / MELS if cfg.mel_nets else None, {NEUTRAL_SPEECH})
    corpora, test_only = every[:len(corpora)], every[len(corpora):len(corpora) + len(test_only)]  # decoded clips
    neutral = every[-1] if neutral else None
    unseen = [c for c in corpora if c.name in held_out] + test_only
    shared: dict[int, TravelModel] = {}
    result: dict = {"corpora": {c.name: len(c.items) for c in corpora}, "config": cfg.__dict__}
    if neutral:
        result["neutral_speech"] = {"clips": len(neutral.items), "sources": neutral_specs}
    if unseen:
        df = leave_one_out(corpora, unseen, feats, cfg, seeds, neutral, mels, shared)
        atomic_write(run / "loco.csv", lambda tmp: df.to_csv(tmp, index=False))
        table = summary(df)
        atomic_write(run / "loco_summary.csv", lambda tmp: table.to_csv(tmp, index=False, float_format="%.4f"))
        result["loco"] = table.to_dict(orient="records")
        print_table(table)
    # the first seed's fit on every corpus is the model (the same settings and seed): not fitted twice
    model = shared[0] if 0 in shared else fit_corpora(corpora, feats, cfg, neutral, mels, "CNN on every corpus")
    save_travel(model, run / "model", {"trained_on": result["corpora"],
                                       **({"neutral_speech": result["neutral_speech"]} if neutral else {})})
    result["seconds"] = time.perf_counter() - start
    atomic_write(run / "metrics.json", lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    print(f"model: {run / 'model'} (use it as --ckpt {run / 'model'}); {result['seconds']:.0f} s")
    return result


def print_table(table: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))
    for norm, rows in table.groupby("normalise", sort=False):
        print(f"mean UAR over the unseen corpora ({norm}): {rows['uar'].mean():.3f}")


def loco_table(table: pd.DataFrame, normalise: str) -> str:
    """The leave-one-corpus-out summary (`loco_summary.csv`) of one normalisation as a Markdown table: UAR
    ± sd over seeds, chance, and each class's recall (— where the corpus lacks the class); model cards and
    docs print it, and a test holds them to the file."""
    rows = table[table["normalise"] == normalise]
    lines = ["| unseen corpus | UAR (± sd, 3 seeds) | chance | " + " | ".join(EMOTIONS) + " |",
             "|---|---|---|" + "---|" * len(EMOTIONS)]
    for r in rows.itertuples():
        recalls = [getattr(r, f"recall_{e}", float("nan")) for e in EMOTIONS]
        chance = 1 / sum(1 for v in recalls if v == v)
        cells = [f"{v:.2f}" if v == v else "—" for v in recalls]
        lines.append(f"| {r.test_corpus} | {r.uar:.3f} ± {r.uar_sd:.3f} | {chance:.2f} | " + " | ".join(cells) + " |")
    lines.append(f"| **mean** | **{rows['uar'].mean():.3f}** | | " + " | ".join([""] * len(EMOTIONS)) + " |")
    return "\n".join(lines)
