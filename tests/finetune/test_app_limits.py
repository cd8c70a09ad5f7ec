"""The web app's recogniser without a browser: the length limit holds before any decoding."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import finetune.app as app
from w2v2.emotion.members import SHIPPED_CLASSIFIER, checkpoint_spec


def test_a_recording_over_the_limit_is_refused_from_its_header(tmp_path, monkeypatch) -> None:
    path = tmp_path / "talk.wav"
    sf.write(path, np.zeros(16000 * 12, dtype=np.float32), 16000)
    recognizer = app.Recognizer([checkpoint_spec(SHIPPED_CLASSIFIER)], max_minutes=0.1)
    monkeypatch.setattr(app, "AudioCache", lambda *a: pytest.fail("decoded before the length check"))
    result = recognizer(path)
    assert result.message.startswith("**talk.wav is 0.2 minutes long**") and result.probs is None
    monkeypatch.undo()
    silent = app.Recognizer([checkpoint_spec(SHIPPED_CLASSIFIER)], max_minutes=1.0)(path)
    assert silent.message.startswith("## no speech") and silent.probs is not None


def test_uploads_and_timelines_are_deleted_once_old(tmp_path) -> None:
    """Gradio deletes its cached uploads every KEEP_SECONDS (they had stayed until the disk filled), and the
    timelines the page offers for download are pruned as new ones are made."""
    import os
    import time

    pytest.importorskip("gradio", reason="the .[app] extra")
    recognizer = app.Recognizer([checkpoint_spec(SHIPPED_CLASSIFIER)], max_minutes=1.0)
    assert app.build_app(recognizer, 1).delete_cache == (app.KEEP_SECONDS, app.KEEP_SECONDS)
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    (old / "talk-timeline.csv").write_text("x")
    new.mkdir()
    then = time.time() - app.KEEP_SECONDS - 5
    os.utime(old, (then, then))
    app.prune(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]


def test_an_unreadable_upload_is_named_once(tmp_path) -> None:
    bad = tmp_path / "text.wav"
    bad.write_text("not audio at all, " * 20)
    result = app.Recognizer([checkpoint_spec(SHIPPED_CLASSIFIER)], max_minutes=1.0)(bad)
    assert result.message.startswith("**Could not read text.wav**: cannot decode audio") and result.probs is None
    assert str(tmp_path) not in result.message  # the upload folder is not the visitor's business
