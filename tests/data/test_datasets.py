"""Dataset layouts parsed from small generated folders; speaker-independent splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from w2v2.data.datasets import (
    DatasetError,
    Item,
    check_files,
    detect_layout,
    load_dataset,
    speaker_split,
    speech_items,
)


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
    wav(folders / "Sadness" / "c.wav")  # another name of an emotion, as many corpora spell it
    assert sorted(it.label for it in load_dataset(folders).train) == [1, 2, 3]


def test_other_names_of_the_emotions_are_read_as_ours(tmp_path) -> None:
    names = ["anger", "Fearful", "afraid", "scared", "sadness", "disgusted", "HAPPINESS", "joy"]
    for i, _ in enumerate(names):
        wav(tmp_path / "clips" / f"{i}.wav")
    rows = "".join(f"clips/{i}.wav,{name}\n" for i, name in enumerate(names))
    (tmp_path / "labels.csv").write_text("path,label\n" + rows)
    assert [it.label for it in load_dataset(tmp_path).train] == [0, 1, 1, 1, 2, 3, 5, 5]
    (tmp_path / "labels.csv").write_text("path,label\nclips/0.wav,calm\n")  # not one of the six: refused
    with pytest.raises(DatasetError, match="unknown label 'calm'"):
        load_dataset(tmp_path)


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


def competition(root: Path, train: str, test: str, sample: str, labels: str | None = None) -> Path:
    for i in range(3):
        wav(root / "train" / f"t{i}.wav")
        wav(root / "test" / f"x{i}.wav")
    (root / "train.csv").write_text(train)
    (root / "test.csv").write_text(test)
    (root / "sample_submission.csv").write_text(sample)
    if labels is not None:
        (root / "test_labels.csv").write_text(labels)
    return root


TRAIN = "id,path,label\nt0,train/t0.wav,0\nt1,train/t1.wav,5\nt2,train/t2.wav,3\n"
TEST = "id,path\nx0,test/x0.wav\nx1,test/x1.wav\nx2,test/x2.wav\n"
SAMPLE = "id,label\nx2,0\nx0,0\nx1,0\n"


def test_duplicate_ids_in_test_or_submission_are_errors_naming_them(tmp_path) -> None:
    dup_test = "id,path\nx0,test/x0.wav\nx1,test/x1.wav\nx1,test/x2.wav\n"  # x1 would be predicted from x2.wav
    with pytest.raises(DatasetError, match=r"test.csv: 1 duplicate id\(s\), e.g. \['x1'\]"):
        load_dataset(competition(tmp_path / "a", TRAIN, dup_test, "id,label\nx0,0\nx1,0\n"))
    dup_sample = "id,label\nx2,0\nx0,0\nx2,0\nx1,0\n"  # x2 would count twice in the test metrics
    with pytest.raises(DatasetError, match=r"sample_submission.csv: 1 duplicate id\(s\), e.g. \['x2'\]"):
        load_dataset(competition(tmp_path / "b", TRAIN, TEST, dup_sample))


def test_duplicate_train_ids_are_warned_about(tmp_path) -> None:
    train = "id,path,label\nt0,train/t0.wav,0\nt0,train/t1.wav,5\nt2,train/t2.wav,3\n"
    with pytest.warns(UserWarning, match=r"train.csv: 1 duplicate id\(s\), e.g. \['t0'\]"):
        data = load_dataset(competition(tmp_path, train, TEST, SAMPLE))
    assert [it.id for it in data.train] == ["t0", "t0", "t2"]  # both clips still train


def test_test_labels_missing_some_ids_are_warned_and_scored_without_them(tmp_path) -> None:
    from w2v2.data.datasets import labelled_test

    with pytest.warns(UserWarning, match=r"no label for 1 of 3 test ids \(e.g. \['x1'\]\)"):
        data = load_dataset(competition(tmp_path, TRAIN, TEST, SAMPLE, "id,label\nx0,fear\nx2,sad\n"))
    assert [(it.id, it.label) for it in labelled_test(data)] == [("x2", 2), ("x0", 1)]  # sample order


def test_one_speaker_or_rows_without_one_fall_back_to_a_random_split() -> None:
    from w2v2.data.datasets import no_speaker_split

    one = [Item(id=str(i), path=Path("x"), label=i % 6, speaker="solo") for i in range(24)]
    partial = [Item(id=str(i), path=Path("x"), label=i % 6, speaker=f"s{i % 3}" if i % 4 else "") for i in range(24)]
    assert no_speaker_split(one) == "only one speaker"
    assert no_speaker_split(partial) == "6 of 24 rows have no speaker"
    for items in (one, partial):
        train, val = speaker_split(items, 0.25)
        assert len(val) == 6 and len(train) == 18 and sorted(it.label for it in val) == list(range(6))


def test_test_ids_left_out_of_the_sample_submission_are_warned_about(tmp_path) -> None:
    with pytest.warns(UserWarning, match=r"test.csv: 1 id\(s\) are not in sample_submission.csv, e.g. \['x1'\]"):
        data = load_dataset(competition(tmp_path, TRAIN, TEST, "id,label\nx2,0\nx0,0\n"))
    assert [t.id for t in data.test] == ["x2", "x0"]


def test_a_class_folder_outside_the_six_emotions_is_named(tmp_path) -> None:
    """RAVDESS's 'calm' beside 'angry': the error names the folder, not 'cannot tell the dataset layout'."""
    for name in ("angry", "sad", "calm"):
        (tmp_path / name).mkdir()
        sf.write(tmp_path / name / "x.wav", np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(DatasetError, match=r"class folders \(angry, sad\), but calm is not among the six emotions"):
        load_dataset(tmp_path)


def test_read_speech_comes_with_speakers_from_a_manifest_or_its_sub_folders(tmp_path) -> None:
    books = tmp_path / "books"  # LibriSpeech's layout: SPEAKER/CHAPTER/clip
    for spk in ("84", "121"):
        wav(books / spk / "1" / f"{spk}-a.flac")
        wav(books / spk / "1" / f"{spk}-b.flac")
    items = speech_items(books, 4)
    assert sorted((it.path.name, it.speaker, it.label) for it in items) == [
        ("121-a.flac", "121", 4), ("121-b.flac", "121", 4), ("84-a.flac", "84", 4), ("84-b.flac", "84", 4)]
    flat = tmp_path / "flat"
    wav(flat / "one.wav")
    assert [it.speaker for it in speech_items(flat, 4)] == [None]  # one unknown speaker
    (books / "manifest.tsv").write_text("path\tnum_samples\tspeaker\n84/1/84-a.flac\t8000\treader7\n")
    assert [(it.path, it.speaker) for it in speech_items(books, 4)] == [(books / "84/1/84-a.flac", "reader7")]
    listed = tmp_path / "list.csv"
    listed.write_text(f"path\n{books / '121/1/121-b.flac'}\n")
    assert [(it.path, it.speaker) for it in speech_items(listed, 4)] == [(books / "121/1/121-b.flac", None)]
    (tmp_path / "bad.csv").write_text("file,speaker\na.wav,1\n")
    with pytest.raises(DatasetError, match=r"bad.csv: no path column"):
        speech_items(tmp_path / "bad.csv", 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty: no audio files"):
        speech_items(tmp_path / "empty", 4)


def test_a_test_set_needs_no_train_csv_and_bad_test_paths_are_named(tmp_path) -> None:
    """submit needs test.csv and sample_submission.csv alone; an empty path names its row and id, a folder or a
    dangling link listed as a clip says so (it had been "file not found", or the folder itself)."""
    root = competition(tmp_path / "a", TRAIN, TEST, SAMPLE)
    (root / "train.csv").unlink()
    data = load_dataset(root, "competition")
    assert data.train == [] and [t.id for t in data.test] == ["x2", "x0", "x1"]
    (root / "test.csv").write_text("id,path\nx0,test/x0.wav\nx1,\nx2,test/x2.wav\n")
    with pytest.raises(DatasetError, match=r"test.csv, row 3 \(id x1\): empty path"):
        load_dataset(root, "competition")
    (root / "test" / "dir.wav").mkdir()
    (root / "test" / "gone.wav").symlink_to(root / "nowhere.wav")
    items = [Item(id="d", path=root / "test" / "dir.wav"), Item(id="g", path=root / "test" / "gone.wav"),
             Item(id="e", path=root / "empty.wav"), Item(id="x0", path=root / "test" / "x0.wav")]
    (root / "empty.wav").write_bytes(b"")
    good, bad = check_files(items)
    assert [it.id for it in good] == ["x0"]
    assert [problem for _, problem in bad] == ["a folder, not an audio file",
                                               "a link to nothing (its target is missing, or the links loop)",
                                               "empty file (0 bytes)"]
