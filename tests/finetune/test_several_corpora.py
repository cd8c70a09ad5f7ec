"""`finetune train --data A --data B ...`: the travelling model on several corpora (finetune/travel.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from finetune.__main__ import main
from finetune.travel import corpus_spec
from w2v2.emotion.travel import load_travel

pytestmark = pytest.mark.slow

QUICK = ("travel.epochs=2", "travel.mel_nets=0")  # descriptors alone: where the CNNs are not the point


def three_class_corpus(source: Path, out: Path) -> Path:
    """source's training clips of angry, sad and happy only, as a CSV corpus (path,label,speaker)."""
    df = pd.read_csv(source / "train.csv")
    df = df[df.label.isin([0, 2, 5])]
    out.mkdir()
    df.assign(path=[str(source / p) for p in df.path])[["path", "label", "speaker"]].to_csv(out / "labels.csv",
                                                                                             index=False)
    return out


def test_corpus_names_come_from_the_folder_or_the_flag(tmp_path) -> None:
    assert corpus_spec("../shared/data/ased-16k") == ("ased", Path("../shared/data/ased-16k"))
    assert corpus_spec("mine=data/x") == ("mine", Path("data/x"))
    assert corpus_spec("data/set/labels.csv")[0] == "set"
    assert corpus_spec("data/ravdess40.csv")[0] == "ravdess40"  # two CSVs of one folder get two names
    assert corpus_spec("data/savee-16k.csv")[0] == "savee"


def test_several_corpora_train_one_model_and_each_unseen_corpus_is_scored(synthetic_corpus, tmp_path, capsys) -> None:
    full = synthetic_corpus(96, 8, 0)
    three = three_class_corpus(synthetic_corpus(96, 8, 1), tmp_path / "three")
    run = tmp_path / "run"
    main(["train", "--data", f"full={full}", "--data", str(three), "--test-corpus", "all", "--run", str(run),
          "--members", "2", "travel.epochs=5", "travel.mel_epochs=2"])
    loco = pd.read_csv(run / "loco.csv")
    assert sorted(set(loco.test_corpus)) == ["full", "three"] and len(loco) == 2 * 2 * 3  # corpora, seeds, norms
    scored = loco[loco.test_corpus == "three"]
    assert scored[["recall_angry", "recall_sad", "recall_happy"]].notna().all().all()
    assert "recall_fear" not in loco.columns or scored["recall_fear"].isna().all()  # scored on its own classes
    assert (loco.trained_on == loco.test_corpus.map({"full": "three", "three": "full"})).all()
    assert loco.uar.between(0, 1).all() and loco.uar.nunique() > 1
    model, info = load_travel(run / "model")
    assert info["trained_on"] == {"full": 72, "three": 36}
    out = capsys.readouterr().out
    assert "mean UAR over the unseen corpora (set)" in out and f"--ckpt {run / 'model'}" in out
    main(["evaluate", "--ckpt", str(run / "model"), "--data", str(three), "--out", str(tmp_path / "m.json")])
    n_speakers = pd.read_csv(three / "labels.csv").speaker.nunique()
    said = capsys.readouterr().out  # as predict says it
    assert f"normalisation: per speaker: {n_speakers} speakers in a set of" in said
    main(["submit", "--ckpt", str(run / "model"), "--data", str(full), "--out", str(tmp_path / "sub")])
    assert "normalisation: the 24 clips with speech as one recording set" in capsys.readouterr().out
    m = json.loads((tmp_path / "m.json").read_text())
    own = m["own_classes"]  # a three-class corpus is also scored as a three-class task
    assert set(own["support"][e] > 0 for e in ("angry", "sad", "happy")) == {True} and own["n"] == m["n"] == 36
    assert sum(row[c] for row in own["confusion_matrix"] for c in (1, 3, 4)) == 0  # never a class it lacks
    assert own["uar"] >= m["uar"]
    preds = tmp_path / "p.csv"
    main(["predict", "--ckpt", str(run / "model"), str(full / "test"), "--out", str(preds)])
    df = pd.read_csv(preds)
    assert len(df) == 24 and set(df.label_name) <= {"angry", "fear", "sad", "disgust", "neutral", "happy"}


def test_a_setting_the_travelling_model_does_not_have_is_refused(synthetic_corpus, tmp_path) -> None:
    full = synthetic_corpus(96, 8, 0)
    with pytest.raises(SystemExit, match="travel.KEY=VALUE"):
        main(["train", "--data", str(full), "--data", f"again={full}", "--run", str(tmp_path / "r"), "epochs=3"])
    with pytest.raises(SystemExit, match=r"travel.epochs=0 is out of range: must be >= 1"):
        main(["train", "--data", str(full), "--data", f"again={full}", "--run", str(tmp_path / "r"), "travel.epochs=0"])
    with pytest.raises(SystemExit, match="not one of the corpora"):
        main(["train", "--data", str(full), "--data", f"again={full}", "--run", str(tmp_path / "r"),
              "--test-corpus", "nope"])


def test_a_broken_clip_is_named_before_any_work_and_skip_bad_leaves_it_out(synthetic_corpus, tmp_path) -> None:
    full = synthetic_corpus(96, 8, 0)
    three = three_class_corpus(synthetic_corpus(96, 8, 1), tmp_path / "three")
    df = pd.read_csv(three / "labels.csv")
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    pd.concat([df, pd.DataFrame([{"path": str(broken), "label": 0, "speaker": "x"}])]).to_csv(
        three / "labels.csv", index=False)
    with pytest.raises(SystemExit, match=r"three: 1 of 37 clips are missing or unreadable \(.*broken.wav: .*skip-bad"):
        main(["train", "--data", str(full), "--data", str(three), "--run", str(tmp_path / "r"), *QUICK])
    assert not (tmp_path / "r").exists()  # nothing was started
    main(["train", "--data", str(full), "--data", str(three), "--run", str(tmp_path / "r"), *QUICK,
          "--skip-bad"])
    assert load_travel(tmp_path / "r" / "model")[1]["trained_on"] == {full.name: 72, "three": 36}


def test_a_dry_run_of_several_corpora_prints_the_plan_and_writes_nothing(synthetic_corpus, tmp_path, capsys) -> None:
    full = synthetic_corpus(96, 8, 0)
    run = tmp_path / "r"
    main(["train", "--data", str(full), "--data", f"again={full}", "--run", str(run), "--dry-run"])
    out = capsys.readouterr().out
    assert "each corpus weighs the same" in out and "--dry-run: nothing computed or written" in out
    assert not run.exists()  # no descriptors, no model: the real run is not refused afterwards


def test_an_earlier_run_is_kept_until_the_new_data_are_checked_and_then_wholly_replaced(synthetic_corpus, tmp_path,
                                                                                       capsys) -> None:
    full = synthetic_corpus(96, 8, 0)
    three = three_class_corpus(synthetic_corpus(96, 8, 1), tmp_path / "three")
    run = tmp_path / "r"
    main(["train", "--data", str(full), "--data", str(three), "--test-corpus", "all", "--run", str(run),
          "--members", "1", *QUICK])
    summary = (run / "loco_summary.csv").read_text()
    with pytest.raises(SystemExit, match=r"already holds a run \(.*loco.csv.*\); pass --overwrite"):
        main(["train", "--data", str(full), "--data", str(three), "--run", str(run), *QUICK])
    with pytest.raises(SystemExit, match="no such file or folder"):  # a mistake in --data: the run stays
        main(["train", "--data", str(full), "--data", str(tmp_path / "typo"), "--run", str(run), "--overwrite"])
    assert (run / "loco_summary.csv").read_text() == summary and (run / "model").is_dir()
    # replaced without --test-corpus: no leave-one-corpus-out scores are left beside a model they do not describe
    main(["train", "--data", str(full), "--data", str(three), "--run", str(run), "--overwrite", *QUICK])
    assert not (run / "loco.csv").exists() and not (run / "loco_summary.csv").exists()
    assert (run / "model").is_dir() and "--overwrite: removed the earlier run's" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="a travelling model's run"):
        main(["report", str(run)])
    (tmp_path / "afile").write_text("x")
    for dry in ([], ["--dry-run"]):
        with pytest.raises(SystemExit, match="is a file, not a folder"):
            main(["train", "--data", str(full), "--data", str(three), "--run", str(tmp_path / "afile"), *dry])
    with pytest.raises(SystemExit, match="--test-data belongs to the travelling model"):
        main(["train", "--data", str(full), "--test-data", str(three), "--run", str(tmp_path / "x")])


def test_read_speech_given_as_neutral_data_trains_every_model_and_is_never_scored(synthetic_corpus, tmp_path,
                                                                                   capsys) -> None:
    full = synthetic_corpus(96, 8, 0)
    three = three_class_corpus(synthetic_corpus(96, 8, 1), tmp_path / "three")
    read = synthetic_corpus(48, 4, 2) / "test"  # a flat folder of 12 clips: one unknown speaker
    run = tmp_path / "r"
    main(["train", "--data", str(full), "--data", str(three), "--test-corpus", "all", "--neutral-data", str(read),
          "--run", str(run), "--members", "1", "travel.epochs=3", "travel.neutral_weight=0.5",
          "travel.mel_epochs=1"])
    out = capsys.readouterr().out
    assert "neutral reference speech: 12 clip(s) of 1 voice(s)" in out and "weighing 0.5 of one corpus" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["neutral_speech"] == {"clips": 12, "sources": [str(read)]}
    assert set(pd.read_csv(run / "loco.csv").test_corpus) == {full.name, "three"}  # read speech is never scored
    _, info = load_travel(run / "model")
    assert info["neutral_speech"]["clips"] == 12 and info["config"]["neutral_weight"] == 0.5
    # the same run without it: the set heads differ, and the lone clips' reference (the pool's statistics)
    main(["train", "--data", str(full), "--data", str(three), "--run", str(tmp_path / "plain"), "travel.epochs=3",
          "travel.mel_nets=0"])
    a, b = load_travel(run / "model")[0], load_travel(tmp_path / "plain" / "model")[0]
    assert not torch.equal(a.set_heads[0].weight, b.set_heads[0].weight)
    assert not torch.equal(a.pool_mean, b.pool_mean) and info["config"]["clip_reference"] == "neutral"
    with pytest.raises(SystemExit, match="--neutral-data belongs to the travelling model"):
        main(["train", "--data", str(full), "--neutral-data", str(read), "--run", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="no such file or folder"):
        main(["train", "--data", str(full), "--data", str(three), "--neutral-data", str(tmp_path / "typo"),
              "--run", str(tmp_path / "y")])
    gone = tmp_path / "gone.tsv"  # --skip-bad leaves out unreadable clips, but not all the read speech silently
    gone.write_text("path\tspeaker\nnowhere.wav\t1\n")
    with pytest.raises(SystemExit, match=r"--neutral-data: none of the clips of .*gone.tsv could be read"):
        main(["train", "--data", str(full), "--data", str(three), "--neutral-data", str(gone), "--skip-bad",
              "--run", str(tmp_path / "z"), "--dry-run"])
    with pytest.warns(UserWarning, match="12 clip\\(s\\) given more than once"):  # two names, the same clips
        main(["train", "--data", str(full), "--data", str(three), "--neutral-data", str(read), "--neutral-data",
              f"again={read}", "--run", str(tmp_path / "twice"), "--dry-run"])
    assert "neutral reference speech: 12 clip(s) of 1 voice(s)" in capsys.readouterr().out
    assert corpus_spec("x/lj/manifest.tsv")[0] == "lj"  # a generic table is named after its folder, as a CSV
