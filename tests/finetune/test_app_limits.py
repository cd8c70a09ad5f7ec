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
