"""Output paths (finetune/outputs.py and its callers): nothing a user owns is ever overwritten."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from finetune.__main__ import main
from w2v2.checkpoint import save_model
from w2v2.config import apply_overrides, preset
from w2v2.model import build_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run folder (run/best) of a random tiny classifier."""
    folder = tmp_path_factory.mktemp("outputs") / "run"
    torch.manual_seed(0)
    save_model(build_model(apply_overrides(preset("tiny"), ["head.num_labels=6"]), "classifier"), folder / "best")
    return folder


def recording(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(seed).normal(0, 0.1, 16000).astype(np.float32), 16000)
    return path


def test_an_output_equal_to_an_input_or_inside_a_model_folder_is_refused(run: Path, tmp_path: Path) -> None:
    rec = recording(tmp_path / "rec.wav")
    before = rec.read_bytes()
    weights = (run / "best" / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit, match=r"--out .*rec.wav: is the input file .*rec.wav; writing it would destroy"):
        main(["predict", "--ckpt", str(run), str(rec), "--out", str(rec)])
    with pytest.raises(SystemExit, match=r"--out .*rec.wav: is the input file"):  # found by scanning a folder
        main(["predict", "--ckpt", str(run), str(tmp_path), "--out", str(rec)])
    (tmp_path / "link.wav").symlink_to(rec)
    with pytest.raises(SystemExit, match=r"--out .*link.wav: is the input file .*rec.wav"):
        main(["predict", "--ckpt", str(run), str(rec), "--out", str(tmp_path / "link.wav")])
    assert rec.read_bytes() == before
    inside = rf"lies inside the model folder {run} \(--ckpt\)"
    for flag, path in (("--out", run / "best" / "model.safetensors"), ("--timeline", run / "best")):
        with pytest.raises(SystemExit, match=rf"{flag} {path}.*: {inside}"):
            main(["predict", "--ckpt", str(run), str(rec), flag, str(path)])
    assert (run / "best" / "model.safetensors").read_bytes() == weights
    assert not (run / "best" / "rec.csv").exists()


def test_an_output_under_a_file_is_refused_naming_the_file(tmp_path) -> None:
    from finetune.outputs import OutputError, check_output_file

    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match=r"--out .*submission.csv: .*afile is a file, so no folder can be made"):
        check_output_file(tmp_path / "afile" / "sub" / "submission.csv", "--out")


def test_evaluate_and_submit_refuse_their_data_and_the_model_folder(run: Path, synthetic_corpus, tmp_path) -> None:
    corpus = synthetic_corpus(clips=12, speakers=4, seed=3)
    clip = corpus / pd.read_csv(corpus / "train.csv").path[0]
    with pytest.raises(SystemExit, match=rf"--out {clip}: is the input file"):
        main(["evaluate", "--ckpt", str(run), "--data", str(corpus), "--out", str(clip)])
    with pytest.raises(SystemExit, match=rf"--out {run}/m.json: lies inside the model folder {run}"):
        main(["evaluate", "--ckpt", str(run), "--data", str(corpus), "--out", str(run / "m.json")])
    with pytest.raises(SystemExit, match=rf"--out {run}/submission.csv: lies inside the model folder {run}"):
        main(["submit", "--ckpt", str(run), "--data", str(corpus), "--out", str(run)])
    assert sorted(p.name for p in run.iterdir()) == ["best"]


def test_predict_out_is_written_through_a_temporary_file(run: Path, tmp_path: Path, monkeypatch) -> None:
    rec = recording(tmp_path / "rec.wav")
    out = tmp_path / "preds.csv"
    out.write_text("the previous predictions\n")

    def full_disk(self: pd.DataFrame, path: Path, **kw) -> None:
        Path(path).write_text("path,la")  # half a CSV, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    with pytest.raises(SystemExit, match=r"preds.csv: no space left on the device \(.* MB free there\)"):
        main(["predict", "--ckpt", str(run), str(rec), "--out", str(out)])
    assert out.read_text() == "the previous predictions\n"
    assert not list(tmp_path.glob("*.tmp"))
    monkeypatch.undo()
    main(["predict", "--ckpt", str(run), str(rec), "--out", str(out)])
    assert list(pd.read_csv(out).path) == [str(rec)]


def test_fine_tuning_on_a_full_disk_ends_with_a_sentence_and_no_half_model(synthetic_corpus, tmp_path: Path,
                                                                            monkeypatch) -> None:
    from w2v2 import checkpoint

    def no_space(*args, **kwargs) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", no_space)
    run = tmp_path / "run"
    with pytest.raises(SystemExit, match=r"^error: .*run/best: no space left on the device \(.* MB needed\)"):
        main(["train", "--data", str(synthetic_corpus(48, 6, 0)), "--run", str(run), "init=scratch", "epochs=1",
              "batch_size=4", "crop_seconds=1.0"])
    assert not (run / "best").exists() and not list(run.glob(".best*"))


def test_training_data_of_one_emotion_is_warned_about(synthetic_corpus, tmp_path: Path, monkeypatch) -> None:
    import shutil

    from finetune import recipe

    data = tmp_path / "data"
    shutil.copytree(synthetic_corpus(48, 6, 0), data)
    train = pd.read_csv(data / "train.csv")
    train["label"] = 2
    train.to_csv(data / "train.csv", index=False)

    def stop(*args, **kwargs) -> None:
        raise SystemExit("stopped before training")

    monkeypatch.setattr(recipe, "train_recipe", stop)
    with pytest.warns(UserWarning, match="every training clip is labelled sad: the model can only learn"):
        with pytest.raises(SystemExit, match="stopped before training"):
            main(["train", "--data", str(data), "--run", str(tmp_path / "run"), "init=scratch"])
    train["label"] = [0] * 2 + [1] * (len(train) - 2)  # two angry clips: a seed may see none
    train.to_csv(data / "train.csv", index=False)
    with pytest.warns(UserWarning, match=r"few clips of angry \(2\): a seed whose validation speakers hold them"):
        with pytest.raises(SystemExit, match="stopped before training"):
            main(["train", "--data", str(data), "--run", str(tmp_path / "run2"), "init=scratch"])
