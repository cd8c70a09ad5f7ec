"""k-fold training (finetune/folds.py): fold assignment, and `train --folds 3` end to end on a
synthetic competition folder: fold run folders, out-of-fold outputs, the ensemble's submission."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finetune.__main__ import main, parse_args
from finetune.folds import assign_folds
from finetune.metrics import classification_metrics
from finetune.outputs import PROB_COLUMNS
from w2v2.data.datasets import Item
from w2v2.synth import generate_corpus

FAST = ["--init", "scratch", "epochs=1", "batch_size=4", "crop_seconds=1.5", "threads=1"]


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # tests/conftest.py


def items(n: int, speakers: int | None, seed: int = 0) -> list[Item]:
    rng = np.random.default_rng(seed)
    return [Item(id=f"c{i}", path=Path(f"c{i}.wav"), label=int(rng.integers(6)),
                 speaker=f"s{rng.integers(speakers)}" if speakers else None) for i in range(n)]


def test_speaker_folds_keep_each_speaker_in_one_fold_and_are_balanced() -> None:
    clips = items(200, speakers=9)
    folds, how = assign_folds(clips, 3, seed=0)
    assert how == "speaker-disjoint, 9 speakers"
    fold_of_speaker = {}
    for it, f in zip(clips, folds, strict=True):
        assert fold_of_speaker.setdefault(it.speaker, f) == f, it.speaker
    sizes = Counter(folds)
    assert sorted(sizes) == [0, 1, 2]
    largest_speaker = max(Counter(it.speaker for it in clips).values())
    assert max(sizes.values()) - min(sizes.values()) <= largest_speaker  # greedy: within one speaker
    assert assign_folds(clips, 3, seed=0) == (folds, how)  # deterministic for a seed


@pytest.mark.parametrize(("speakers", "why"), [(None, "no speaker information"), (2, "2 speakers for 3 folds")])
def test_without_enough_speakers_folds_are_stratified_by_class(speakers: int | None, why: str) -> None:
    clips = items(100, speakers)
    folds, how = assign_folds(clips, 3, seed=1)
    assert how.startswith(why) and "stratified" in how
    sizes = Counter(folds)
    assert max(sizes.values()) - min(sizes.values()) <= 1
    for label in range(6):
        per_fold = Counter(f for it, f in zip(clips, folds, strict=True) if it.label == label)
        assert max(per_fold.values()) - min(per_fold.get(f, 0) for f in range(3)) <= 1, label


def test_folds_and_tta_options_are_checked() -> None:
    assert parse_args(["train", "--data", "d", "--folds", "5"]).folds == 5
    assert parse_args(["evaluate", "--ckpt", "a", "--ckpt", "b", "--data", "d", "--tta", "0.9,1,1.1"]).tta == (
        0.9, 1.0, 1.1)
    for argv in (["train", "--data", "d", "--folds", "1"], ["predict", "--ckpt", "a", "x.wav", "--tta", "0,1"],
                 ["predict", "--ckpt", "a", "x.wav", "--window-seconds", "2", "--hop-seconds", "3"]):
        with pytest.raises(SystemExit):
            parse_args(argv)


@pytest.fixture(scope="module")
def kfold(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("kfold")
    generate_corpus(root / "data", clips=48, speakers=6, seed=0)
    main(["train", "--data", str(root / "data"), "--run", str(root / "run"), "--folds", "3", *FAST])
    return root / "data", root / "run"


def test_folds_3_writes_three_runs_and_validates_every_training_clip_once(kfold: tuple[Path, Path]) -> None:
    data, run = kfold
    train = pd.read_csv(data / "train.csv")
    assert sorted(p.name for p in run.glob("fold_*")) == ["fold_1", "fold_2", "fold_3"]
    vals = [pd.read_csv(run / f"fold_{k}" / "val_probs.csv") for k in (1, 2, 3)]
    for k in (1, 2, 3):
        assert (run / f"fold_{k}" / "best" / "model.safetensors").is_file()
    validated = pd.concat(vals)
    assert sorted(validated.id) == sorted(train.id)  # every training clip exactly once
    speakers = [set(train.set_index("id").loc[v.id, "speaker"]) for v in vals]
    assert all(not (a & b) for i, a in enumerate(speakers) for b in speakers[i + 1:])  # speaker-disjoint
    oof = pd.read_csv(run / "oof_probs.csv")
    assert list(oof.id) == list(train.id) and list(oof.label) == list(train.label)  # training order
    for k, v in enumerate(vals, start=1):
        rows = oof.set_index("id").loc[v.id]
        assert (rows.fold == k).all()
        assert np.allclose(rows[PROB_COLUMNS].to_numpy(), v[PROB_COLUMNS].to_numpy())
    metrics = json.loads((run / "metrics.json").read_text())
    expected = classification_metrics(list(oof.label), list(oof[PROB_COLUMNS].to_numpy().argmax(1)))
    assert metrics["oof"]["n"] == len(train) and metrics["oof"]["confusion_matrix"] == expected["confusion_matrix"]
    assert [m["validation"]["n"] for m in metrics["members"]] == [len(v) for v in vals]
    assert (run / "confusion_matrix_oof.png").is_file()


def test_folds_submission_is_the_mean_of_the_folds_test_probabilities(kfold: tuple[Path, Path]) -> None:
    data, run = kfold
    sample, sub = pd.read_csv(data / "sample_submission.csv"), pd.read_csv(run / "submission.csv")
    assert list(sub.columns) == list(sample.columns) and list(sub.id) == list(sample.id)
    probs = pd.read_csv(run / "test_probs.csv")
    assert list(probs.columns) == ["id", *PROB_COLUMNS] and list(probs.id) == list(sample.id)
    p = probs[PROB_COLUMNS].to_numpy()
    assert np.allclose(p.sum(1), 1, atol=1e-5)
    folds = np.stack([pd.read_csv(run / f"fold_{k}" / "test_probs.csv")[PROB_COLUMNS].to_numpy() for k in (1, 2, 3)])
    assert np.allclose(p, folds.mean(0), atol=2e-6)
    assert (sub.label.to_numpy() == p.argmax(1)).all()
    labels = pd.read_csv(data / "test_labels.csv").set_index("id").loc[probs.id, "label"]
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert test["accuracy"] == pytest.approx(float((labels.to_numpy() == p.argmax(1)).mean()))


def test_a_kfold_parent_is_an_ensemble_for_evaluate_and_submit(kfold: tuple[Path, Path], tmp_path) -> None:
    data, run = kfold
    main(["evaluate", "--ckpt", str(run), "--data", str(data), "--out", str(tmp_path / "m.json")])
    m = json.loads((tmp_path / "m.json").read_text())
    assert [x["ckpt"] for x in m["members"]] == [str(run / f"fold_{k}" / "best") for k in (1, 2, 3)]
    assert m["accuracy"] == pytest.approx(json.loads((run / "metrics.json").read_text())["test"]["accuracy"])
    main(["submit", "--ckpt", str(run), "--data", str(data), "--out", str(tmp_path / "sub")])
    ours, theirs = (pd.read_csv(f / "test_probs.csv")[PROB_COLUMNS].to_numpy() for f in (tmp_path / "sub", run))
    assert np.allclose(ours, theirs, atol=1e-5)
    assert pd.read_csv(tmp_path / "sub" / "submission.csv").equals(pd.read_csv(run / "submission.csv"))


def test_a_kfold_run_folder_is_refused_or_with_overwrite_replaced(kfold: tuple[Path, Path], tmp_path) -> None:
    data, run = kfold
    with pytest.raises(SystemExit, match=r"already holds a finished run \(.*fold_1.*\); pass --overwrite"):
        main(["train", "--data", str(data), "--run", str(run), "--folds", "3", *FAST])
    with pytest.raises(SystemExit, match="--folds chooses the validation speakers"):
        main(["train", "--data", str(data), "--run", str(tmp_path / "r"), "--folds", "3", "--val-speakers", "spk000"])
