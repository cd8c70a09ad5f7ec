"""Labelled emotion datasets in the layouts users have, and speaker-independent splits.

Layouts (detected automatically, or forced):
- competition: train.csv (id,path,label[,speaker]), test.csv (id,path), sample_submission.csv (id,label);
- crema: a folder of CREMA-D files `1001_DFA_ANG_XX.wav` (speaker, sentence, emotion code, level);
- csv: a CSV `path,label[,speaker][,corpus]` (label as 0..5, an emotion name or a CREMA-D code; a corpus trains
  only on the classes it has; with a corpus, a speaker is CORPUS:SPEAKER, one person per corpus);
- folders: one sub-folder per class (emotion name, CREMA-D code or digit 0..5).
Paths are relative to the folder holding the CSV. Every problem names the file and the row.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from w2v2.data.audio import AudioError, audio_info, find_audio, not_a_file
from w2v2.data.labels import CREMA_CODES, EMOTIONS, SYNONYMS

LAYOUTS = ("competition", "crema", "csv", "folders")
CREMA_NAME = re.compile(r"^(\d+)_([A-Z]+)_([A-Z]{3})_([A-Z]+)$")


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the file (and row) and the problem."""


@dataclass(frozen=True)
class Item:
    id: str
    path: Path
    label: int | None = None
    speaker: str | None = None
    corpus: str | None = None  # a CSV's `corpus` column: corpora with partial label sets train on their own classes


def item_labels(items: Iterable[Item]) -> list[int]:
    """The labels of labelled items (a training set, labelled test clips): only unlabelled test clips have none."""
    return [cast(int, it.label) for it in items]


@dataclass
class Dataset:
    layout: str
    root: Path
    train: list[Item]  # labelled items
    test: list[Item] = field(default_factory=list)  # competition test items, sample_submission order
    submission: pd.DataFrame | None = None  # sample_submission.csv as read
    test_labels: dict[str, int] | None = None  # scoring labels where the corpus ships them


def parse_label(value: object, where: str) -> int:
    """0..5, an emotion name (or a common other name of it: anger, sadness, happiness, joy, fearful, ...) or a
    CREMA-D code -> class index; DatasetError naming `where`."""
    text = str(value).strip()
    if re.fullmatch(r"-?\d+(\.0+)?", text):
        label = int(float(text))
        if 0 <= label < len(EMOTIONS):
            return label
        raise DatasetError(f"{where}: label {text} is outside 0..{len(EMOTIONS) - 1}")
    if text.lower() in EMOTIONS:
        return EMOTIONS.index(text.lower())
    if text.lower() in SYNONYMS:
        return SYNONYMS[text.lower()]
    if text.upper() in CREMA_CODES:
        return CREMA_CODES[text.upper()]
    raise DatasetError(f"{where}: unknown label {text!r} (use 0..5, {', '.join(EMOTIONS)} or a CREMA-D code)")


def _read_csv(path: Path, required: tuple[str, ...], sep: str = ",") -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep)
    except Exception as e:
        raise DatasetError(f"{path}: cannot read CSV ({type(e).__name__}: {e})") from None
    df.columns = [c.strip().lower() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    return df


def _clip_path(root: Path, rel: str, *subdirs: str) -> Path:
    """A CSV path relative to `root` (or, forgivingly, to one of its sub-folders)."""
    p = Path(rel)
    if p.is_absolute():
        return p
    for base in (root, *(root / s for s in subdirs)):
        if (base / p).exists():
            return base / p
    return root / p


def _csv_items(path: Path, subdirs: tuple[str, ...] = ()) -> list[Item]:
    df = _read_csv(path, ("path", "label"))
    items = []
    for i, row in enumerate(df.itertuples(index=False), start=2):  # row 1 is the header
        where = f"{path}, row {i}"
        if not row.path:
            raise DatasetError(f"{where}: empty path")
        speaker, corpus = getattr(row, "speaker", "") or None, getattr(row, "corpus", "") or None
        if speaker is not None and corpus is not None:  # speaker "1" of two corpora: two people
            speaker = f"{corpus}:{speaker}"
        items.append(Item(id=getattr(row, "id", "") or Path(row.path).stem,
                          path=_clip_path(path.parent, row.path, *subdirs), label=parse_label(row.label, where),
                          speaker=speaker, corpus=corpus))
    return items


def duplicates(ids: list[str]) -> list[str]:
    """Ids that occur more than once, in first-seen order."""
    counts = Counter(ids)
    return [i for i in counts if counts[i] > 1]


def _unique_ids(path: Path, ids: list[str]) -> None:
    """Test and submission ids key predictions: a repeated one would give one clip another's row."""
    dup = duplicates(ids)
    if dup:
        raise DatasetError(f"{path}: {len(dup)} duplicate id(s), e.g. {dup[:5]}; every id must be unique")


def load_competition(root: Path) -> Dataset:
    """train.csv (optional: `submit` needs only the test set), test.csv and sample_submission.csv of `root`."""
    train = _csv_items(root / "train.csv", ("train",)) if (root / "train.csv").exists() else []
    if dup := duplicates([it.id for it in train]):  # harmless for training, but usually a merge mistake
        warnings.warn(f"{root / 'train.csv'}: {len(dup)} duplicate id(s), e.g. {dup[:5]}", stacklevel=2)
    test_df = _read_csv(root / "test.csv", ("id", "path"))
    _unique_ids(root / "test.csv", list(test_df["id"]))
    for i, r in enumerate(test_df.itertuples(index=False), start=2):
        if not r.path:
            raise DatasetError(f"{root / 'test.csv'}, row {i} (id {r.id}): empty path")
    test = [Item(id=r.id, path=_clip_path(root, r.path, "test")) for r in test_df.itertuples(index=False)]
    submission = None
    if (root / "sample_submission.csv").is_file():
        path = root / "sample_submission.csv"
        submission = pd.read_csv(path, dtype=str, keep_default_na=False)  # columns kept exactly as given
        id_col = next((c for c in submission.columns if c.strip().lower() == "id"), None)
        if id_col is None:
            raise DatasetError(f"{path}: no id column; found {list(submission.columns)}")
        _unique_ids(path, list(submission[id_col]))
        by_id = {t.id: t for t in test}
        unknown = [i for i in submission[id_col] if i not in by_id]
        if unknown:
            raise DatasetError(f"{root / 'sample_submission.csv'}: ids not in test.csv, e.g. {unknown[:3]}")
        listed = set(submission[id_col])
        left_out = [t.id for t in test if t.id not in listed]
        if left_out:  # the submission follows sample_submission.csv: these clips get no row
            warnings.warn(f"{root / 'test.csv'}: {len(left_out)} id(s) are not in sample_submission.csv, e.g. "
                          f"{left_out[:3]}: they are not predicted and get no submission row", stacklevel=2)
        test = [by_id[i] for i in submission[id_col]]
    return Dataset("competition", root, train, test, submission, _test_labels(root, test))


def _test_labels(root: Path, test: list[Item]) -> dict[str, int] | None:
    """test_labels.csv as {id: label}; test ids it does not cover are warned about (scored without them)."""
    path = root / "test_labels.csv"
    if not path.is_file():
        return None
    df = _read_csv(path, ("id", "label"))
    labels = {r.id: parse_label(r.label, f"{path}, row {i}")
              for i, r in enumerate(df.itertuples(index=False), start=2)}
    uncovered = [t.id for t in test if t.id not in labels]
    if uncovered:
        warnings.warn(f"{path}: no label for {len(uncovered)} of {len(test)} test ids (e.g. {uncovered[:3]}); "
                      "test metrics cover the labelled ones only", stacklevel=2)
    return labels


def labelled_test(data: Dataset) -> list[Item]:
    """The test items that test_labels.csv labels, with their label (sample_submission order)."""
    labels = data.test_labels or {}
    return [Item(t.id, t.path, labels[t.id], t.speaker) for t in data.test if t.id in labels]


def competition_audio(root: Path) -> list[Path]:
    """Every audio path of a competition folder, train and test, labels not read (for pretraining)."""
    paths = []
    for name, sub in (("train.csv", "train"), ("test.csv", "test")):
        if (root / name).is_file():
            df = _read_csv(root / name, ("path",))
            paths += [_clip_path(root, rel, sub) for rel in df["path"]]
    return paths


def load_crema(root: Path) -> Dataset:
    items = []
    for p in find_audio(root):
        m = CREMA_NAME.match(p.stem)
        if not m:
            raise DatasetError(f"{p}: not a CREMA-D file name (expected like 1001_DFA_ANG_XX.wav)")
        if m.group(3) not in CREMA_CODES:
            raise DatasetError(f"{p}: unknown CREMA-D emotion code {m.group(3)!r} (known: {', '.join(CREMA_CODES)})")
        items.append(Item(id=p.stem, path=p, label=CREMA_CODES[m.group(3)], speaker=m.group(1)))
    return Dataset("crema", root, items)


def load_folders(root: Path) -> Dataset:
    items = []
    for sub in sorted(d for d in root.iterdir() if d.is_dir()):
        label = parse_label(sub.name, f"{sub} (class folder)")
        items += [Item(id=p.stem, path=p, label=label) for p in find_audio(sub)]
    return Dataset("folders", root, items)


def detect_layout(root: Path) -> str:
    if root.is_file():
        return "csv"
    if (root / "train.csv").is_file():
        return "competition"
    if _find_label_csv(root) is not None:
        return "csv"
    subdirs = [d for d in root.iterdir() if d.is_dir()]
    names = {d.name.lower() for d in subdirs}
    # a class folder's name: an emotion (or another name of it), a code or 0-5
    emotions = set(EMOTIONS) | set(SYNONYMS) | {c.lower() for c in CREMA_CODES}
    numbers = {str(i) for i in range(6)}
    if subdirs and names <= emotions | numbers:
        return "folders"
    audio = find_audio(root)
    if audio and all(CREMA_NAME.match(p.stem) for p in audio[:50]):
        return "crema"
    known = names & emotions
    if known:  # class folders, some of them named outside the six emotions
        odd = sorted(d.name for d in subdirs if d.name.lower() not in known | numbers)
        one = len(odd) == 1
        raise DatasetError(f"{root}: class folders ({', '.join(sorted(known))}), but {', '.join(odd)} "
                           f"{'is' if one else 'are'} not among the six emotions ({', '.join(EMOTIONS)}, or "
                           f"0-5): rename or remove {'it' if one else 'them'}")
    raise DatasetError(f"{root}: cannot tell the dataset layout (no train.csv, no CSV with path,label columns, "
                       "no class folders, no CREMA-D file names); pass --layout")


def _find_label_csv(root: Path) -> Path | None:
    for p in sorted(root.glob("*.csv")):
        with p.open() as f:
            header = f.readline().lower()
        if "path" in header and "label" in header:
            return p
    return None


MANIFESTS = ("manifest.tsv", "manifest.csv")


def speech_items(source: str | Path, label: int) -> list[Item]:
    """Unlabelled speech given one `label` (e.g. read speech as "neutral"), with speakers where the source
    names them: a CSV/TSV with a `path` column (and `speaker`), a folder holding such a manifest.tsv or
    manifest.csv, or any folder of audio (a clip's speaker: its first sub-folder, as in LibriSpeech; the clips
    of a flat folder, one unknown speaker). Paths are relative to the manifest's folder."""
    root = Path(source)
    if not root.exists():
        raise DatasetError(f"{root}: no such file or folder")
    manifest = root if root.is_file() else next((root / m for m in MANIFESTS if (root / m).is_file()), None)
    if manifest is None:
        found = find_audio(root)
        if not found:
            raise DatasetError(f"{root}: no audio files (and no manifest.tsv or manifest.csv)")
        return [Item(id=p.stem, path=p, label=label,
                     speaker=p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else None)
                for p in found]
    df = _read_csv(manifest, (), "\t" if manifest.suffix.lower() in (".tsv", ".tab") else ",")
    if "path" not in df.columns:
        raise DatasetError(f"{manifest}: no path column; found {list(df.columns)}")
    items = []
    for i, row in enumerate(df.itertuples(index=False), start=2):
        if not row.path:
            raise DatasetError(f"{manifest}, row {i}: empty path")
        items.append(Item(id=Path(row.path).stem, path=_clip_path(manifest.parent, row.path), label=label,
                          speaker=getattr(row, "speaker", "") or None))
    if not items:
        raise DatasetError(f"{manifest}: no rows")
    return items


def load_dataset(root: str | Path, layout: str | None = None) -> Dataset:
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: no such file or folder")
    layout = layout or detect_layout(root)
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    if layout == "competition":
        return load_competition(root)
    if layout == "crema":
        return load_crema(root)
    if layout == "folders":
        return load_folders(root)
    csv = root if root.is_file() else _find_label_csv(root)
    if csv is None:
        raise DatasetError(f"{root}: no CSV with path,label columns")
    return Dataset("csv", csv.parent, _csv_items(csv))


def check_files(items: list[Item]) -> tuple[list[Item], list[tuple[Item, str]]]:
    """Split items into readable ones and (item, problem) for missing/unreadable/empty files (headers only)."""
    good, bad = [], []
    for item in items:
        if problem := not_a_file(item.path):
            bad.append((item, problem))
            continue
        try:
            frames, _ = audio_info(item.path)
        except AudioError as e:
            bad.append((item, e.problem))
            continue
        if frames == 0:
            bad.append((item, "no audio samples (empty file)"))
        else:
            good.append(item)
    return good, bad


def speaker_split(items: list[Item], val_fraction: float = 0.15, seed: int = 0,
                  val_speakers: list[str] | None = None) -> tuple[list[Item], list[Item]]:
    """(train, validation). With speakers known, whole speakers go to validation (never in both);
    otherwise (see `no_speaker_split`) a per-class stratified random split."""
    rng = np.random.default_rng(seed)
    why_random = no_speaker_split(items) if not val_speakers else None
    if val_speakers:
        known = {it.speaker for it in items}
        unknown = [s for s in val_speakers if s not in known]
        if unknown:
            raise DatasetError(f"--val-speakers: unknown speaker(s) {unknown}; known: {sorted(map(str, known))[:20]}")
        chosen = set(val_speakers)
    elif why_random is None:
        speakers = sorted({it.speaker for it in items if it.speaker is not None})  # all have one (why_random)
        rng.shuffle(speakers)
        counts = {s: sum(it.speaker == s for it in items) for s in speakers}
        chosen, total = set(), 0
        for s in speakers:  # whole speakers until the fraction is reached, at least one left for training
            if total >= val_fraction * len(items) or len(chosen) == len(speakers) - 1:
                break
            chosen.add(s)
            total += counts[s]
    else:
        val_idx = []
        for label in sorted(set(item_labels(items))):
            idx = [i for i, it in enumerate(items) if it.label == label]
            rng.shuffle(idx)
            val_idx += idx[:max(1, round(val_fraction * len(idx)))] if len(idx) > 1 else []
        val_set = set(val_idx)
        return [it for i, it in enumerate(items) if i not in val_set], [items[i] for i in sorted(val_set)]
    # rows without a speaker (possible with --val-speakers) train: they cannot be in a chosen speaker
    return [it for it in items if it.speaker not in chosen], [it for it in items if it.speaker in chosen]


def no_speaker_split(items: list[Item]) -> str | None:
    """Why `items` cannot be split by speaker (None when they can): validation needs a speaker of
    its own, and a row without a speaker could be any of them."""
    unknown = sum(not it.speaker for it in items)
    if unknown == len(items):
        return "no speaker information"
    if unknown:
        return f"{unknown} of {len(items)} rows have no speaker"
    if len({it.speaker for it in items}) < 2:
        return "only one speaker"
    return None
