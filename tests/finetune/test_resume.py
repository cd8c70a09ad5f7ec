"""`finetune train --resume`: a fine-tuning run killed with SIGKILL mid-epoch and resumed ends with the same
best/ weights (bit for bit) and metrics as an uninterrupted run of the same seed; an ensemble keeps its
finished members."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from finetune.__main__ import main

pytestmark = pytest.mark.slow  # CLI runs end to end: make test-fast leaves them out

ROOT = Path(__file__).resolve().parents[2]
# the frozen-CNN feature cache and waveform augmentation on, as in the default recipe
TINY = ["init=scratch", "batch_size=4", "crop_seconds=1.5", "patience=20", "freeze_feature_encoder=true",
        "threads=1"]
TIMING = ("train_seconds", "val_seconds")


def train_cli(corpus: Path, run: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "finetune", "train", "--data", str(corpus), "--run", str(run),
                             *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def history(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (run / "history.jsonl").read_text().splitlines()]


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(synthetic_corpus, tmp_path: Path) -> None:
    corpus = synthetic_corpus(48, 6, 0)
    settings = [*TINY, "epochs=8"]
    whole = train_cli(corpus, tmp_path / "whole", *settings)
    killed = train_cli(corpus, tmp_path / "killed", *settings)
    history_file = tmp_path / "killed" / "history.jsonl"
    while not (history_file.is_file() and len(history_file.read_text().splitlines()) >= 2):
        assert killed.poll() is None, killed.stdout.read() if killed.stdout else ""
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)  # in epoch 3 (or while its state is written)
    killed.wait()
    assert whole.wait() == 0, whole.stdout.read() if whole.stdout else ""
    assert not (tmp_path / "killed" / "metrics.json").exists()

    with pytest.raises(SystemExit, match="pass --resume to continue it"):
        main(["train", "--data", str(corpus), "--run", str(tmp_path / "killed"), *settings])
    resumed = train_cli(corpus, tmp_path / "killed", "--resume")
    out = resumed.communicate()[0]
    assert resumed.returncode == 0, out
    assert "resuming" in out and "after epoch" in out
    a, b = tmp_path / "whole", tmp_path / "killed"
    assert same_weights(a / "best", b / "best")
    assert history(a) == history(b)
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in (a, b))
    assert ma["validation"] == mb["validation"] and ma["test"] == mb["test"]
    assert not (b / "resume").exists()  # finished: the state is gone
    with pytest.raises(SystemExit, match="finished run"):
        main(["train", "--run", str(b), "--resume"])


def test_a_resumed_ensemble_keeps_its_finished_members(synthetic_corpus, tmp_path: Path, monkeypatch) -> None:
    from finetune import train as train_module

    corpus = synthetic_corpus(48, 6, 0)
    settings = [*TINY, "epochs=2", "members=2", "kinds=[finetune]"]
    main(["train", "--data", str(corpus), "--run", str(tmp_path / "whole"), *settings])

    real = train_module.save_state
    calls = []

    def killed_in_member_2(run: Path, *args, **kwargs) -> None:
        calls.append(run.name)
        if run.name == "member_2" and calls.count("member_2") == 2:
            raise KeyboardInterrupt  # after member 2's first epoch was saved
        real(run, *args, **kwargs)

    monkeypatch.setattr(train_module, "save_state", killed_in_member_2)  # in this process: workers=1
    with pytest.raises(SystemExit, match=r"^interrupted: `python -m finetune train --resume --run .*killed`"):
        # ("whole" trained its members side by side, where cores allow)
        main(["train", "--data", str(corpus), "--run", str(tmp_path / "killed"), *settings, "workers=1"])
    monkeypatch.undo()
    first = tmp_path / "killed" / "member_1" / "metrics.json"
    stamp = first.stat().st_mtime_ns
    with pytest.raises(SystemExit, match="nope: no such folder"):
        main(["train", "--run", str(tmp_path / "nope"), "--resume"])
    with pytest.raises(SystemExit, match="drop epochs=3"):
        main(["train", "--run", str(tmp_path / "killed"), "--resume", "epochs=3"])
    main(["train", "--run", str(tmp_path / "killed"), "--resume"])
    assert first.stat().st_mtime_ns == stamp  # not trained again
    for member in ("member_1", "member_2"):
        assert same_weights(tmp_path / "whole" / member / "best", tmp_path / "killed" / member / "best")
    ma, mb = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("whole", "killed"))
    assert ma["test"] == mb["test"]
    # the summary's seconds: member 1's own training time (before the kill), not 0
    own = json.loads(first.read_text())["train_seconds"]
    assert {m["name"]: m["seconds"] for m in mb["members"]}["member_1"] == pytest.approx(own) and own > 0
    # the run's wall time: both sessions (member 1 trained whole in the interrupted one)
    sessions = json.loads((tmp_path / "killed" / "recipe.json").read_text())["sessions"]
    assert ma["sessions"] == 1 and mb["sessions"] == len(sessions) == 2
    assert sessions[0]["seconds"] >= own and sessions[1]["seconds"] > 0
    assert mb["train_seconds"] == pytest.approx(sessions[0]["seconds"] + sessions[1]["seconds"])


def test_a_session_killed_outright_is_counted_up_to_its_last_beat(tmp_path: Path) -> None:
    from finetune.recipe import RECIPE, Session

    run = tmp_path / "run"
    run.mkdir()
    (run / RECIPE).write_text(json.dumps({"plan": {"member_1": 2}}))  # a run started before sessions were noted
    first = Session(run, beat=0.05)
    time.sleep(0.4)  # then SIGKILL: no end(), only the beats
    first.stopped.set()
    first.thread.join()
    noted = json.loads((run / RECIPE).read_text())
    assert noted["plan"] == {"member_1": 2} and 0.2 <= noted["sessions"][0]["seconds"] <= 0.45
    second = Session(run, beat=60)
    assert second.before == pytest.approx(noted["sessions"][0]["seconds"])
    time.sleep(0.1)
    seconds, count = second.end()
    assert count == 2 and seconds == pytest.approx(second.before + 0.1, abs=0.05)
