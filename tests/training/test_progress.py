"""Progress in a log is plain periodic lines from one bar; on a terminal it stays tqdm."""

from __future__ import annotations

import io
import re

import pytest
from tqdm import tqdm

from w2v2.training import progress as progress_module
from w2v2.training.progress import LogProgress, duration, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_whole_lines_with_counts_and_time_left(capsys) -> None:
    with LogProgress(total=10, desc="all members", unit="step", interval=0) as bar:
        for _ in range(3):
            bar.update(1)
        bar.set_postfix(loss="1.234")
        bar.update(2)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[0].startswith("all members: 1/10 step (10%), 0:00 elapsed, about 0:00 left")
    with LogProgress(total=100, desc="slow start", interval=0) as bar:
        bar.update(1)  # 1% done: no time left is guessed from the start-up
    assert "left" not in capsys.readouterr().err.splitlines()[0]
    assert lines[3].startswith("all members: 5/10 step (50%)") and lines[3].endswith("loss 1.234")
    assert len(lines) == 5  # four updates, and one line when it ends


def test_a_bar_inside_another_is_silent_and_short_work_says_nothing(capsys) -> None:
    outer = LogProgress(total=4, desc="outer", interval=0)
    for _ in LogProgress(range(5), desc="inner", interval=0):
        pass
    outer.update(4)
    outer.close()
    assert [line.split(":")[0] for line in capsys.readouterr().err.splitlines()] == ["outer", "outer"]
    for _ in LogProgress(range(3), desc="quick"):  # under LOG_INTERVAL: not a line
        pass
    assert capsys.readouterr().err == ""


def test_a_terminal_gets_tqdm_and_a_log_gets_lines(monkeypatch) -> None:
    monkeypatch.setattr(progress_module.sys, "stderr", Terminal())
    assert isinstance(progress_bar(range(3), desc="x", disable=None), tqdm)
    monkeypatch.setattr(progress_module.sys, "stderr", io.StringIO())
    bar = progress_bar(range(3), desc="x", disable=None)  # tqdm would hide itself here: lines instead
    assert isinstance(bar, LogProgress) and not bar.silent
    bar.close()
    assert progress_bar(range(3), desc="x", disable=True).silent


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00"), (75.4, "1:15"), (3725, "1:02:05")])
def test_durations_read_as_clock_times(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_training_into_a_log_writes_no_carriage_returns(synthetic_corpus, tmp_path, capsys, monkeypatch) -> None:
    from finetune.__main__ import main

    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 0.0)  # every update would be a line: only one bar's
    corpus = synthetic_corpus(clips=24, speakers=4, seed=1)
    capsys.readouterr()
    main(["train", "--data", str(corpus), "--run", str(tmp_path / "run"), "--init", "scratch", "epochs=2",
          "batch_size=4", "crop_seconds=1.5", "threads=1"])
    err = capsys.readouterr().err
    assert "\r" not in err
    bars = {re.match(r"([^:]+):", line).group(1) for line in err.splitlines() if re.match(r"[^:]+: \d", line)}
    assert bars == {"all members"}
