"""Ensembles, test-time augmentation and emotion timelines (w2v2/emotion/members.py, w2v2/emotion/windows.py,
finetune/predict.py), on tiny random classifiers: the properties, not the accuracy."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from finetune.__main__ import main
from finetune.config import AugmentConfig
from finetune.data import augment
from finetune.outputs import PROB_COLUMNS
from w2v2.checkpoint import CheckpointError, save_model
from w2v2.config import apply_overrides, preset
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.members import load_classifier, members
from w2v2.emotion.recognizer import EmotionRecognizer
from w2v2.emotion.windows import predict_probs, speed_view, window_probs
from w2v2.model import build_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def classifier(folder: Path, seed: int, overrides: tuple[str, ...] = ()) -> Path:
    """A run folder (folder/best) of a random tiny classifier."""
    torch.manual_seed(seed)
    model = build_model(apply_overrides(preset("tiny"), ["head.num_labels=6", *overrides]), "classifier")
    save_model(model, folder / "best", extra={"finetune": {"window_seconds": 2.0}})
    return folder


def noise(seconds: float, seed: int) -> torch.Tensor:
    return torch.randn(int(16000 * seconds), generator=torch.Generator().manual_seed(seed)) * 0.1


@pytest.fixture(scope="module")
def two(tmp_path_factory) -> list[Path]:
    """Two members of different architectures (group- and layer-norm CNN) and inits."""
    root = tmp_path_factory.mktemp("members")
    return [classifier(root / "a", 0), classifier(root / "b", 1, ("encoder.norm=layer", "context.layers=1"))]


def test_an_ensemble_predicts_the_mean_of_its_members_probabilities(two: list[Path], tmp_path) -> None:
    waves = [noise(1.0, 0), noise(5.0, 1), noise(2.5, 2)]
    mean, each = EmotionRecognizer.from_pretrained(two).clip_probs(waves)
    alone = [predict_probs(load_classifier(p)[0], waves, 2.0) for p in two]  # each member's trained window
    assert torch.allclose(each, torch.stack(alone))
    assert torch.allclose(mean, (alone[0] + alone[1]) / 2, atol=1e-7)
    assert not torch.allclose(alone[0], alone[1], atol=1e-3)  # the members differ: the mean is a real test
    files = [tmp_path / f"{i}.wav" for i in range(3)]
    for f, w in zip(files, waves, strict=True):
        sf.write(f, w.numpy(), 16000, subtype="FLOAT")
    outs = []
    for ckpts in ([two[0]], [two[1]], two):
        outs.append(tmp_path / f"{len(outs)}.csv")
        main(["predict", *[a for c in ckpts for a in ("--ckpt", str(c))], *map(str, files), "--out", str(outs[-1]),
              "--window-seconds", "2"])
    a, b, both = (pd.read_csv(o)[PROB_COLUMNS].to_numpy() for o in outs)
    assert np.allclose(both, (a + b) / 2, atol=1.1e-4)  # the CSV holds 4 decimals


def test_tta_averages_deterministic_speed_views_of_each_window() -> None:
    torch.manual_seed(0)
    model = build_model(apply_overrides(preset("tiny"), ["head.num_labels=6"]), "classifier").eval()
    clip = noise(1.5, 3)
    assert torch.equal(predict_probs(model, [clip], 2.0, tta=(1.0,)), predict_probs(model, [clip], 2.0))
    tta = predict_probs(model, [clip], 2.0, tta=(0.9, 1.0, 1.1))
    views = torch.cat([predict_probs(model, [speed_view(clip, s)], 4.0) for s in (0.9, 1.0, 1.1)])
    assert torch.allclose(tta[0], views.mean(0), atol=1e-6)
    assert torch.equal(tta, predict_probs(model, [clip], 2.0, tta=(0.9, 1.0, 1.1)))  # deterministic
    assert speed_view(clip, 1.1).numel() == pytest.approx(clip.numel() / 1.1, abs=1)


def test_augmentation_crops_first_to_what_the_model_sees() -> None:
    crop = 16000
    wave = noise(4.0, 4)
    for speed in (0.9, 1.0, 1.1):
        out = augment(wave, AugmentConfig(speeds=(speed,)), random.Random(0), crop, torch.Generator().manual_seed(0))
        assert crop <= out.numel() <= crop + 2, (speed, out.numel())  # collate_waves trims the extra sample
    plain = AugmentConfig(speeds=(1.0,), gain_db=0.0, noise_prob=0.0)
    out = augment(wave, plain, random.Random(0), crop, torch.Generator().manual_seed(5))
    start = int(torch.randint(0, wave.numel() - crop + 1, (1,), generator=torch.Generator().manual_seed(5)))
    assert torch.equal(out, wave[start:start + crop])  # an exact slice: nothing else changed
    short = noise(0.5, 6)
    assert torch.equal(augment(short, plain, random.Random(0), crop, torch.Generator()), short)  # never padded here


def test_timeline_windows_cover_the_recording_and_each_is_the_segment_alone(two: list[Path], tmp_path) -> None:
    recording = noise(23.3, 7)
    sf.write(tmp_path / "talk.wav", recording.numpy(), 16000, subtype="FLOAT")
    out, folder = tmp_path / "p.csv", tmp_path / "timeline"
    main(["predict", "--ckpt", str(two[0]), str(tmp_path / "talk.wav"), "--out", str(out), "--timeline", str(folder),
          "--window-seconds", "4", "--hop-seconds", "3"])
    df = pd.read_csv(folder / "talk.csv")
    assert list(df.columns) == ["start_s", "end_s", *PROB_COLUMNS, "speech_s", "label_name"]
    assert df.start_s.iloc[0] == 0 and df.end_s.iloc[-1] == pytest.approx(23.3)
    assert (df.start_s.iloc[1:].to_numpy() <= df.end_s.iloc[:-1].to_numpy()).all()  # no gap between windows
    assert list(df.start_s.iloc[:-1]) == [3.0 * i for i in range(len(df) - 1)]
    model = load_classifier(two[0])[0]
    for row in df.itertuples():
        segment = recording[round(row.start_s * 16000):round(row.end_s * 16000)]
        alone = predict_probs(model, [segment], window_seconds=4.0)[0].numpy()
        assert np.allclose(probs_of(row), alone, atol=2e-6), row.Index
    overall = pd.read_csv(out)
    assert np.allclose(overall[PROB_COLUMNS].to_numpy()[0], df[PROB_COLUMNS].mean().to_numpy(), atol=1e-4)
    assert (folder / "talk.png").stat().st_size > 10_000


def probs_of(row: tuple) -> np.ndarray:
    return np.array([getattr(row, c) for c in PROB_COLUMNS])


def test_window_probs_of_a_clip_do_not_depend_on_the_other_clips(two: list[Path]) -> None:
    model = load_classifier(two[0])[0]
    long, short = noise(9.0, 8), noise(1.0, 9)
    together = window_probs(model, [short, long], 4.0, 3.0)
    assert torch.allclose(together[1], window_probs(model, [long], 4.0, 3.0)[0], atol=1e-6)
    assert together[1].shape == (3, 6) and together[0].shape == (1, 6)  # 9 s: starts 0, 3, 5


def test_a_member_whose_classes_are_in_another_order_is_refused_by_name(tmp_path) -> None:
    ours, theirs = classifier(tmp_path / "ours", 0), classifier(tmp_path / "theirs", 1)
    meta_file = theirs / "best" / "w2v2.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "labels": list(reversed(EMOTIONS))}))
    with pytest.raises(CheckpointError, match=rf"{theirs / 'best'}: its classes are {', '.join(reversed(EMOTIONS))}, "
                                              rf"not {', '.join(EMOTIONS)} in that order"):
        members([ours, theirs])
    meta_file.write_text(json.dumps({**meta, "labels": list(EMOTIONS)}))  # the same order, stored: accepted
    assert members([ours, theirs]) == [ours / "best", theirs / "best"]
    clip = tmp_path / "a.wav"
    sf.write(clip, noise(1.0, 0).numpy(), 16000)
    meta_file.write_text(json.dumps({**meta, "labels": ["calm", *EMOTIONS[1:]]}))
    with pytest.raises(SystemExit, match=rf"{theirs / 'best'}: its classes are calm,"):
        main(["predict", "--ckpt", str(ours), "--ckpt", str(theirs), str(clip)])
