"""Checkpoints: a killed replace stays loadable; damaged or edited files and NaN weights are clear errors."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from w2v2 import checkpoint
from w2v2.checkpoint import CheckpointError, load_model, save_model
from w2v2.config import preset
from w2v2.model import build_model
from w2v2.training.runs import resolve_checkpoint


def classifier(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(preset("tiny"), "classifier")


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_a_kill_between_the_two_renames_of_a_replace_leaves_the_previous_model_loadable(tmp_path, monkeypatch):
    run = tmp_path / "run"
    first, second, third = classifier(0), classifier(1), classifier(2)
    save_model(first, run / "best")
    real_replace, calls = os.replace, []

    def killed_after_first_rename(src, dst):  # the process dies after best -> best.old
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", killed_after_first_rename)
    with pytest.raises(KeyboardInterrupt):
        save_model(second, run / "best")
    monkeypatch.setattr(checkpoint.os, "replace", real_replace)
    assert not (run / "best").exists() and (run / "best.old").is_dir()
    with pytest.warns(UserWarning, match="a save was interrupted"):
        for where in (run, run / "best"):  # a run folder or its best/: both find best.old
            assert resolve_checkpoint(where) == run / "best.old"
            assert same_weights(load_model(resolve_checkpoint(where)), first)
    save_model(third, run / "best")  # the next save completes the replace and removes best.old
    assert same_weights(load_model(resolve_checkpoint(run)), third) and not (run / "best.old").exists()


def test_damaged_or_edited_checkpoint_files_are_errors_naming_the_file(tmp_path) -> None:
    good = save_model(classifier(0), tmp_path / "good")
    truncated = save_model(classifier(0), tmp_path / "truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated/model.safetensors: unreadable weights"):
        load_model(truncated)
    garbage = save_model(classifier(0), tmp_path / "garbage")
    (garbage / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"garbage/model.safetensors: unreadable weights"):
        load_model(garbage)
    edited = save_model(classifier(0), tmp_path / "edited")
    meta = json.loads((edited / "w2v2.json").read_text())
    meta["model"]["context"]["dim"] = 32  # heads 4 still divide it, so the model builds; the weights cannot fit
    (edited / "w2v2.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"edited: the weights in model.safetensors do not fit the config"):
        load_model(edited)
    meta["model"]["context"]["dropout"] = 3.0
    (edited / "w2v2.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"edited/w2v2.json: invalid model config: context.dropout=3.0"):
        load_model(edited)
    cut = (good / "w2v2.json").read_text()[:100]
    (good / "w2v2.json").write_text(cut)
    with pytest.raises(CheckpointError, match=r"good/w2v2.json: unreadable checkpoint metadata"):
        load_model(good)


def test_non_finite_weights_are_never_saved_nor_loaded(tmp_path) -> None:
    from safetensors.torch import save_file

    model = classifier(0)
    save_model(model, tmp_path / "best")
    with torch.no_grad():
        model.head.classifier.weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"refusing to save .*best: non-finite .*'head.classifier.weight'"):
        save_model(model, tmp_path / "best")
    assert load_model(tmp_path / "best") is not None  # the good one is still there
    # written behind save_model's back (another tool, a bit flip): loading names it
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "best" / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"best: non-finite \(NaN/inf\) weights in 1 tensor"):
        load_model(tmp_path / "best")


def test_a_checkpoint_path_that_is_no_checkpoint_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a w2v2 checkpoint"):
        load_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="typo: no such file or folder"):  # not "no w2v2.json"
        load_model(tmp_path / "typo")


def no_space(*args, **kwargs) -> None:
    raise OSError(28, "No space left on device")


def test_a_full_disk_leaves_the_previous_checkpoint_and_no_temporary_folder(tmp_path, monkeypatch) -> None:
    target = tmp_path / "best"
    save_model(classifier(0), target)
    monkeypatch.setattr(checkpoint, "save_file", no_space)
    with pytest.raises(checkpoint.DiskFullError) as caught:
        save_model(classifier(1), target)
    message = str(caught.value)
    assert message.startswith(f"{target}: no space left on the device (")
    assert "MB free there, about 0." in message and "MB needed" in message and "intact" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]  # no .best.* temporary folder
    assert same_weights(load_model(target), classifier(0))


def test_atomic_write_on_a_full_disk_keeps_the_earlier_file(tmp_path) -> None:
    out = tmp_path / "submission.csv"
    out.write_text("earlier\n")

    def half_then_full(tmp: Path) -> None:
        tmp.write_text("id,lab")
        no_space()

    with pytest.raises(checkpoint.DiskFullError, match="submission.csv: no space left on the device"):
        checkpoint.atomic_write(out, half_then_full)
    assert out.read_text() == "earlier\n" and sorted(p.name for p in tmp_path.iterdir()) == ["submission.csv"]
    assert checkpoint.describe_os_error(OSError(28, "No space left on device", str(out))).startswith(
        f"{out}: no space left on the device")


def test_a_base_names_a_checkpoint_directory_not_a_run_folder(tmp_path) -> None:
    save_model(build_model(preset("tiny"), "pretrain"), tmp_path / "run" / "best")
    assert checkpoint.base_dir(f"ckpt:{tmp_path / 'run' / 'best'}") == tmp_path / "run" / "best"
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=re.escape(f"base='ckpt:{run}': {run} is not a w2v2 checkpoint (no w2v2")):
        checkpoint.base_dir(f"ckpt:{run}")  # the packer resolves a run folder, loading does not
    with pytest.raises(ValueError, match="a base must be a w2v2 checkpoint"):
        checkpoint.base_dir("hf:facebook/wav2vec2-base")
    assert checkpoint.base_dir("pretrained:small") == checkpoint.PRETRAINED_DIR / "small"


def test_a_full_disk_is_named_whatever_the_writing_library_raises(tmp_path, monkeypatch) -> None:
    def safetensors_full(*args, **kwargs) -> None:  # what safetensors raises on a full disk: not an OSError
        raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                           '"No space left on device" })')

    monkeypatch.setattr(checkpoint, "save_file", safetensors_full)
    with pytest.raises(checkpoint.DiskFullError, match=r"best: no space left on the device"):
        save_model(classifier(0), tmp_path / "best")
    assert list(tmp_path.iterdir()) == []

    def torch_save_full(tmp: Path) -> None:  # torch.save's message names no cause: the free space decides
        tmp.write_bytes(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(checkpoint, "free_bytes", lambda path: 1000)
    with pytest.raises(checkpoint.DiskFullError, match=r"trainer.pt: no space left on the device"):
        checkpoint.atomic_write(tmp_path / "trainer.pt", torch_save_full, needed=10**6)
    with pytest.raises(RuntimeError, match="PytorchStreamWriter"):  # with room to spare it is not a full disk
        checkpoint.atomic_write(tmp_path / "trainer.pt", torch_save_full, needed=100)
    assert list(tmp_path.iterdir()) == []


def test_directory_writers_leave_nothing_half_written_on_a_full_disk(tmp_path, monkeypatch) -> None:
    import random

    import torch

    import finetune.state as state
    from w2v2.convert import save_hf

    model = classifier(0)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    args = (tmp_path, model, opt, sched, None, random.Random(0), torch.Generator(), torch.device("cpu"))
    state.save_state(*args, {"epoch": 1})
    earlier = (tmp_path / "resume" / "trainer.pt").read_bytes()

    def full(obj, path, *a, **k) -> None:  # torch.save on a full disk: a RuntimeError naming no cause
        Path(path).write_bytes(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(state.torch, "save", full)
    monkeypatch.setattr(checkpoint, "free_bytes", lambda path: 1000)
    with pytest.raises(checkpoint.DiskFullError, match=r"resume: no space left on the device .* previous epoch"):
        state.save_state(*args, {"epoch": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resume"]  # no .resume.tmp
    assert (tmp_path / "resume" / "trainer.pt").read_bytes() == earlier
    monkeypatch.setattr("w2v2.convert.save_file", no_space)
    with pytest.raises(checkpoint.DiskFullError, match=r"hf: no space left on the device"):
        save_hf(model, tmp_path / "hf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resume"]


def test_atomic_write_goes_through_links_and_pipes_rather_than_replacing_them(tmp_path) -> None:
    """`--out link.csv` writes the link's target and keeps the link; `--out /dev/null` (here a named pipe, which
    a rename would also replace with a plain file) is written into."""
    import threading

    target = tmp_path / "target.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    checkpoint.atomic_write(link, lambda tmp: tmp.write_text("new"))
    assert link.is_symlink() and target.read_text() == "new"
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()))
    reader.start()
    checkpoint.atomic_write(pipe, lambda tmp: tmp.write_text("through the pipe"))
    reader.join(timeout=10)
    assert got == [b"through the pipe"] and not pipe.is_file() and pipe.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "pipe", "target.csv"]  # no temporary left
