"""Dataset layouts parsed from small generated folders; speaker-independent splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from w2v2.datasets import DatasetError, Item, check_files, detect_layout, load_dataset, speaker_split


def wav(path: Path, seconds: float = 0.5, sr: int = 16000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(0).normal(0, 0.1, (int(sr * seconds), channels)).astype(np.float32)
    sf.write(path, data, sr)
    return path


def test_competition_layout(tmp_path) -> None:
    for i in range(3):
        wav(tmp_path / "train" / f"t{i}.wav")
        wav(tmp_path / "test" / f"x{i}.wav", sr=44100, channels=2)
    (tmp_path / "train.csv").write_text("id,path,label\nt0,train/t0.wav,0\nt1,train/t1.wav,5\nt2,t2.wav,3\n")
    (tmp_path / "test.csv").write_text("id,path\nx0,test/x0.wav\nx1,test/x1.wav\nx2,test/x2.wav\n")
    (tmp_path / "sample_submission.csv").write_text("id,label\nx2,0\nx0,0\nx1,0\n")
    data = load_dataset(tmp_path)
    assert data.layout == "competition"
    assert [it.label for it in data.train] == [0, 5, 3]
    assert data.train[2].path == tmp_path / "train" / "t2.wav"  # relative to train/ as a fallback
    assert [t.id for t in data.test] == ["x2", "x0", "x1"]  # sample_submission's order


def test_malformed_rows_name_the_file_and_row(tmp_path) -> None:
    wav(tmp_path / "a.wav")
    (tmp_path / "labels.csv").write_text("path,label\na.wav,2\na.wav,7\n")
    with pytest.raises(DatasetError, match=r"labels.csv, row 3: label 7 is outside 0..5"):
        load_dataset(tmp_path)
    (tmp_path / "labels.csv").write_text("path,label\na.wav,bored\n")
    with pytest.raises(DatasetError, match=r"row 2: unknown label 'bored'"):
        load_dataset(tmp_path)


def test_generic_csv_with_names_codes_speakers_and_a_missing_file(tmp_path) -> None:
    wav(tmp_path / "clips" / "a.flac")
    wav(tmp_path / "clips" / "b.wav")
    (tmp_path / "labels.csv").write_text(
        "path,label,speaker\nclips/a.flac,happy,s1\nclips/b.wav,ANG,s2\nclips/missing.wav,4,s2\n")
    data = load_dataset(tmp_path)
    assert data.layout == "csv" and [it.label for it in data.train] == [5, 0, 4]
    assert [it.speaker for it in data.train] == ["s1", "s2", "s2"]
    good, bad = check_files(data.train)
    assert len(good) == 2 and bad[0][0].path.name == "missing.wav" and bad[0][1] == "file not found"


def test_crema_and_folder_layouts(tmp_path) -> None:
    crema = tmp_path / "crema"
    for name in ["1001_DFA_ANG_XX", "1001_IEO_SAD_HI", "1002_DFA_NEU_XX"]:
        wav(crema / f"{name}.wav")
    data = load_dataset(crema)
    assert detect_layout(crema) == "crema"
    assert [(it.label, it.speaker) for it in data.train] == [(0, "1001"), (2, "1001"), (4, "1002")]
    wav(crema / "1003_DFA_BOR_XX.wav")
    with pytest.raises(DatasetError, match="1003_DFA_BOR_XX.wav: unknown CREMA-D emotion code 'BOR'"):
        load_dataset(crema, "crema")
    folders = tmp_path / "folders"
    wav(folders / "fear" / "a.wav")
    wav(folders / "3" / "b.ogg")
    data = load_dataset(folders)
    assert data.layout == "folders" and sorted(it.label for it in data.train) == [1, 3]


def test_speaker_independent_split() -> None:
    items = [Item(id=f"{s}-{i}", path=Path("x"), label=i % 6, speaker=f"spk{s}") for s in range(10) for i in range(12)]
    train, val = speaker_split(items, 0.2, seed=1)
    assert {it.speaker for it in train}.isdisjoint({it.speaker for it in val})
    assert len(train) + len(val) == len(items) and 0.15 <= len(val) / len(items) <= 0.35
    train, val = speaker_split(items, 0.2, seed=1, val_speakers=["spk3"])
    assert {it.speaker for it in val} == {"spk3"}
    with pytest.raises(DatasetError, match="unknown speaker"):
        speaker_split(items, 0.2, val_speakers=["nobody"])
    anonymous = [Item(id=str(i), path=Path("x"), label=i % 6) for i in range(60)]
    train, val = speaker_split(anonymous, 0.2)
    assert sorted(it.label for it in val) == sorted(list(range(6)) * 2)  # stratified
