"""Pretraining runs: exact resume after SIGKILL, 2-process DDP, learning, export, bad files."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from safetensors.torch import load_file

from w2v2.synth import generate_corpus

ROOT = Path(__file__).resolve().parents[2]
FAST = ["data.max_seconds=2.0", "data.max_batch_seconds=8.0", "data.min_seconds=0.3", "optim.warmup_steps=5",
        "threads=2"]


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unlabelled")
    generate_corpus(root, clips=24, speakers=4, seed=0)
    return root / "train"


def run_cli(args: list[str], **kw) -> subprocess.CompletedProcess | subprocess.Popen:
    cmd = [sys.executable, "-m", "pretrain", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if kw.pop("background", False):
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, **kw)


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it), so parallel test runs never collide."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def final_weights(run: Path, step: int) -> dict:
    return load_file(str(run / "checkpoints" / f"step_{step:08d}" / "model.safetensors"))


@pytest.mark.slow
def test_killed_run_resumes_to_identical_weights(audio: Path, tmp_path: Path) -> None:
    common = [f"data.path={audio}", "optim.max_steps=10", "save_every=2", "log_every=1", *FAST]
    ref = run_cli([*common, f"run_dir={tmp_path / 'ref'}"])
    assert ref.returncode == 0, ref.stdout + ref.stderr
    # killed when about to save update 6: updates 5-6 trained and logged, the last checkpoint is 4's
    worker = [sys.executable, str(Path(__file__).with_name("kill_worker.py")), "6", "--"]
    killed = subprocess.run([*worker, *common, f"run_dir={tmp_path / 'killed'}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    killed_at = (tmp_path / "killed" / "checkpoints" / "latest").read_text().strip()
    assert killed_at == "step_00000004"
    logged = [json.loads(line)["step"] for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    assert logged[-1] == 6  # the steps after the checkpoint were done, and are trained again on resume
    # resumed with the run's own config.yaml (its informational resolved_model is not a setting)
    resumed = run_cli(["--config", str(tmp_path / "killed" / "config.yaml"), "resume=auto"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed from" in resumed.stdout
    log = [json.loads(line) for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 11))  # the killed steps 5-6 logged once, by the resumed run
    elapsed = [r["elapsed_s"] for r in log]
    assert all(a < b for a, b in zip(elapsed[:-1], elapsed[1:], strict=True))  # carried over the resume
    a, b = final_weights(tmp_path / "ref", 10), final_weights(tmp_path / "killed", 10)
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a), f"weights differ after resuming from {killed_at}"


@pytest.mark.slow
def test_two_process_ddp_sees_different_data_and_agrees(audio: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "pretrain",
           f"data.path={audio}", "optim.max_steps=3", f"run_dir={tmp_path}", *FAST[:-1], "threads=1"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    replicas = json.loads((tmp_path / "ddp.json").read_text())
    assert replicas["ranks"] == 2 and replicas["agree"] and replicas["param_sums"][0] == replicas["param_sums"][1]
    # the data each rank trains on: its own clips in every epoch, all clips over the ranks
    from pretrain.config import PretrainConfig
    from pretrain.data import scan
    from pretrain.train import make_sampler

    cfg = PretrainConfig(data=replace(PretrainConfig().data, max_seconds=2.0, max_batch_seconds=8.0))
    clips, _ = scan([audio], 4800, strict=False)
    for epoch in (0, 1):
        shards = []
        for rank in (0, 1):
            sampler = make_sampler(cfg, clips, rank, 2)
            sampler.set_epoch(epoch)
            shards.append({i for batch in sampler for i in batch})
        assert shards[0] and shards[1] and shards[0].isdisjoint(shards[1])


@pytest.mark.slow
def test_loss_falls_perplexity_holds_and_export_loads_in_transformers(audio: Path, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from pretrain.__main__ import main

    main([f"data.path={audio}", "optim.max_steps=60", "log_every=1", "save_every=60", f"run_dir={tmp_path}", *FAST,
          "optim.lr=0.002", "model.quantizer.temp_decay=0.97",  # anneal the Gumbel temperature within the test
          "optim.amp=none"])  # the fp32 reference on every CPU (bf16: see test_auto_amp_is_bf16_where_native)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    start = np.mean([r["contrastive"] for r in log[:5]])
    end = np.mean([r["contrastive"] for r in log[-5:]])
    print(f"contrastive loss per masked frame: {start:.3f} (first 5 steps) -> {end:.3f} (last 5)")
    assert end < 0.9 * start, (start, end)
    assert min(r["perplexity"] for r in log) > 4  # G = 2: collapse would be 2
    assert (tmp_path / "curves.png").is_file()
    main(["export", str(tmp_path), str(tmp_path / "hf")])
    _, info = transformers.Wav2Vec2ForPreTraining.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_auto_amp_is_bf16_where_native_and_checkpoints_stay_fp32(audio: Path, tmp_path: Path) -> None:
    """optim.amp=auto autocasts to bf16 exactly where the device computes it natively; a bf16 run's updates
    differ from fp32's from the same start, and what it saves is fp32 and finite."""
    import torch

    from pretrain.__main__ import main
    from pretrain.config import resolve_run
    from w2v2.training import autocast, native_bf16, resolve_amp

    cpu, layer = torch.device("cpu"), torch.nn.Linear(4, 2)
    for amp, dtype in (("none", torch.float32), ("bf16", torch.bfloat16),
                       ("auto", torch.bfloat16 if native_bf16(cpu) else torch.float32)):
        ctx, scaler = autocast(resolve_amp(resolve_run(None, [f"optim.amp={amp}"])[0].optim.amp, cpu), cpu)
        with ctx:
            assert layer(torch.randn(1, 4)).dtype == dtype, amp
        assert scaler is None
    weights = {}
    for amp in ("none", "bf16"):
        main([f"data.path={audio}", "optim.max_steps=2", f"run_dir={tmp_path / amp}", *FAST, f"optim.amp={amp}"])
        weights[amp] = load_file(tmp_path / amp / "checkpoints" / "step_00000002" / "model.safetensors")
        assert all(v.dtype == torch.float32 and bool(v.isfinite().all()) for v in weights[amp].values() if
                   v.is_floating_point())
    assert any(not torch.equal(weights["none"][k], weights["bf16"][k]) for k in weights["none"])


@pytest.mark.slow
def test_bad_files_are_reported_and_do_not_stop_the_run(audio: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for p in sorted(audio.glob("*.wav"))[:8]:
        (data / p.name).write_bytes(p.read_bytes())
    (data / "empty.wav").write_bytes(b"")
    (data / "corrupt.flac").write_bytes(b"fLaC this is not flac")
    sf.write(data / "short.wav", np.zeros(100, dtype=np.float32), 16000)
    sf.write(data / "nan.wav", np.full(16000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    out = run_cli([f"data.path={data}", "optim.max_steps=4", f"run_dir={tmp_path / 'run'}", *FAST])
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ("empty.wav", "corrupt.flac", "short.wav", "nan.wav"):
        assert name in out.stdout, name
    assert (tmp_path / "run" / "checkpoints" / "step_00000004" / "model.safetensors").is_file()
    strict = run_cli([f"data.path={data}", "optim.max_steps=1", f"run_dir={tmp_path / 'strict'}", "--strict", *FAST])
    assert strict.returncode != 0 and "data.strict" in strict.stderr


@pytest.mark.slow
def test_compiled_training_runs_and_refuses_layerdrop(audio: Path, tmp_path: Path) -> None:
    from pretrain.__main__ import main

    main([f"data.path={audio}", "optim.max_steps=3", "log_every=1", f"run_dir={tmp_path}", *FAST,
          "compile=true", "model.context.layerdrop=0"])
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in log)
    assert all(r["perplexity"] > 1 for r in log)
    with pytest.raises(SystemExit, match="layerdrop=0"):
        main([f"data.path={audio}", "optim.max_steps=1", f"run_dir={tmp_path / 'b'}", *FAST, "compile=true",
              "model.context.layerdrop=0.1"])


def test_continued_pretraining_starts_from_exactly_the_given_weights(audio: Path, tmp_path: Path) -> None:
    from pretrain.__main__ import main
    from w2v2.checkpoint import load_model
    from w2v2.convert import save_hf

    main([f"data.path={audio}", "optim.max_steps=2", "save_every=2", f"run_dir={tmp_path / 'src'}", *FAST])
    source = load_file(str(tmp_path / "src" / "checkpoints" / "step_00000002" / "model.safetensors"))
    save_hf(load_model(tmp_path / "src" / "checkpoints" / "step_00000002"), tmp_path / "hf")
    for init in (f"ckpt:{tmp_path / 'src'}", f"hf:{tmp_path / 'hf'}"):
        run = tmp_path / init.split(":")[0]
        # lr 0: the one update changes nothing, so the saved weights are the ones the run started from
        main([f"data.path={audio}", "optim.max_steps=1", "save_every=1", f"run_dir={run}", f"init={init}",
              "optim.lr=0", *FAST])
        started = final_weights(run, 1)
        assert started.keys() == source.keys()
        differ = [k for k in source if k != "quantizer.temperature" and not (started[k] == source[k]).all()]
        assert not differ, f"{init}: {differ[:3]}"
    # and a fresh run from scratch does not start from them
    main([f"data.path={audio}", "optim.max_steps=1", "save_every=1", f"run_dir={tmp_path / 'scratch'}",
          "optim.lr=0", *FAST])
    fresh = final_weights(tmp_path / "scratch", 1)
    assert not (fresh["project_c.weight"] == source["project_c.weight"]).all()


def test_a_competition_folder_gives_its_train_and_test_audio_and_no_labels(tmp_path: Path) -> None:
    import pandas as pd

    from pretrain.data import scan

    generate_corpus(tmp_path / "comp", clips=12, speakers=4, seed=1)
    train = pd.read_csv(tmp_path / "comp" / "train.csv")
    test = pd.read_csv(tmp_path / "comp" / "test.csv")
    train["label"] = "not-a-label"  # labels are never read
    train.to_csv(tmp_path / "comp" / "train.csv", index=False)
    (tmp_path / "comp" / "stray.wav").write_bytes((tmp_path / "comp" / train.path[0]).read_bytes())
    clips, bad = scan(tmp_path / "comp", min_samples=400)
    expected = {(tmp_path / "comp" / p).resolve() for p in [*train.path, *test.path]}
    assert {c.path.resolve() for c in clips} == expected and not bad  # CSV audio only: not stray.wav
    # several sources at once: the competition folder and a manifest
    sf.write(tmp_path / "extra.wav", np.zeros(8000, dtype=np.float32), 16000)
    (tmp_path / "extra.tsv").write_text("path\tnum_samples\nextra.wav\t8000\n")
    clips, _ = scan([tmp_path / "comp", tmp_path / "extra.tsv"], min_samples=400)
    assert {c.path.resolve() for c in clips} == expected | {(tmp_path / "extra.wav").resolve()}


def test_resuming_logs_each_step_once_and_refuses_another_architecture(audio: Path, tmp_path: Path) -> None:
    import shutil

    from pretrain.__main__ import main

    run = tmp_path / "run"
    common = [f"data.path={audio}", "log_every=1", "save_every=2", f"run_dir={run}", *FAST]
    main([*common, "optim.max_steps=3"])
    # as if killed after logging step 3 but before its checkpoint: latest is step 2
    shutil.rmtree(run / "checkpoints" / "step_00000003")
    (run / "checkpoints" / "latest").write_text("step_00000002\n")
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": 4, "loss"')  # a line cut short by the kill
    main([*common, "optim.max_steps=4"])
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    config = (run / "config.yaml").read_text()
    with pytest.raises(SystemExit, match=r"step_00000004 was trained with another model config "
                                         r"\(context.layers: 2 -> 3\).*resume=none"):
        main([*common, "optim.max_steps=6", "model.context.layers=3"])
    assert (run / "config.yaml").read_text() == config  # the run's own config is untouched


@pytest.mark.slow
def test_ddp_a_nan_or_an_empty_batch_on_one_rank_is_skipped_by_both_and_never_hangs(audio: Path, tmp_path: Path):
    import torch

    # rank 1's third micro-batch holds a NaN; rank 0's sixth decodes nothing (2 micro-batches per update)
    faults = ["nan:1:3", "empty:0:6"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           str(Path(__file__).with_name("ddp_fault_worker.py")), *faults, "--", f"data.path={audio}",
           "optim.max_steps=4",
           "optim.accumulate=2", "log_every=1", "save_every=4", "model.context.layerdrop=0.2", f"run_dir={tmp_path}",
           *FAST[:-1], "threads=1"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("non-finite loss (on at least one rank): update skipped on every rank") == 1
    assert json.loads((tmp_path / "ddp.json").read_text())["agree"]  # both ranks took the same branches
    assert [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    state = torch.load(tmp_path / "checkpoints" / "step_00000004" / "trainer.pt", weights_only=True)
    assert state["nonfinite_total"] == 1


def test_latest_naming_a_deleted_checkpoint_resumes_from_the_newest_complete_one(audio: Path, tmp_path: Path) -> None:
    from pretrain.__main__ import main

    run = tmp_path / "run"
    common = [f"data.path={audio}", "log_every=1", "save_every=1", f"run_dir={run}", *FAST[:-1], "threads=1"]
    main([*common, "optim.max_steps=2"])
    kept = (run / "checkpoints" / "step_00000002" / "model.safetensors").read_bytes()
    (run / "checkpoints" / "latest").write_text("step_00000005\n")  # its folder deleted by hand
    with pytest.warns(UserWarning, match=r"latest names step_00000005, which is missing or incomplete: resuming "
                                         r"from the newest complete checkpoint, .*step_00000002"):
        main([*common, "optim.max_steps=3"])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step_00000002", "step_00000003"]
    assert (run / "checkpoints" / "step_00000002" / "model.safetensors").read_bytes() == kept  # not trained again
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [1, 2, 3]
    # with no complete checkpoint left, the run stops rather than start over under the same folder
    for step in ("step_00000002", "step_00000003"):
        (run / "checkpoints" / step / "trainer.pt").unlink()
    with pytest.raises(SystemExit, match=r"latest names step_00000003, which is missing or incomplete, and .*run "
                                         r"holds no other complete checkpoint: start over with resume=none"):
        main([*common, "optim.max_steps=4"])


def test_data_where_no_clip_decodes_stops_with_a_message_instead_of_looping(tmp_path: Path) -> None:
    from pretrain.__main__ import main
    from pretrain.train import MAX_EMPTY_UPDATES

    for name in ("a.wav", "b.wav"):  # valid headers, so the scan keeps them; every sample NaN
        sf.write(tmp_path / name, np.full(16000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    def hung(*_: object) -> None:
        raise TimeoutError("still looping after 60 s")

    before = signal.signal(signal.SIGALRM, hung)  # the old loop never returned: fail instead of hanging
    signal.alarm(60)
    try:
        with pytest.raises(SystemExit, match=rf"no audio decoded in {MAX_EMPTY_UPDATES} updates in a row; dropped 2 "
                                             r"unusable file\(s\): a.wav: audio contains NaN or infinite values; "
                                             r"b.wav: audio contains NaN or infinite values: fix or remove these"):
            main([f"data.path={tmp_path}", "optim.max_steps=2", f"run_dir={tmp_path / 'run'}", *FAST[:-1],
                  "threads=1"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_run_dir_of_a_fine_tuning_run_or_a_file_and_export_of_nothing_are_refused(tmp_path: Path) -> None:
    from pretrain.__main__ import main
    from w2v2.checkpoint import save_model
    from w2v2.config import apply_overrides, preset
    from w2v2.model import build_model

    run = tmp_path / "finetuned"
    save_model(build_model(apply_overrides(preset("tiny"), ["head.num_labels=6"]), "classifier"), run / "best")
    (run / "config.yaml").write_text("epochs: 1\n")
    (run / "metrics.json").write_text("{}")
    nothing = f"data.path={tmp_path / 'no_data'}"  # the old code went on to this error, or trained
    with pytest.raises(SystemExit, match=rf"run_dir={run}: holds a fine-tuning run \(best, metrics.json\); "
                                         r"pretraining would overwrite its config.yaml and curves.png"):
        main([nothing, f"run_dir={run}"])
    assert (run / "config.yaml").read_text() == "epochs: 1\n" and not (run / "curves.png").exists()
    (tmp_path / "a.wav").write_bytes(b"")
    with pytest.raises(SystemExit, match=rf"run_dir={tmp_path / 'a.wav'}: it is a file, not a folder"):
        main([nothing, f"run_dir={tmp_path / 'a.wav'}"])
    with pytest.raises(SystemExit, match=rf"run_dir={tmp_path / 'a.wav' / 'run'}: {tmp_path / 'a.wav'} is a file"):
        main([nothing, f"run_dir={tmp_path / 'a.wav' / 'run'}"])
    with pytest.raises(SystemExit, match=r"error: /no/such/run: no such checkpoint or run folder"):
        main(["export", "/no/such/run", str(tmp_path / "hf")])
    with pytest.raises(SystemExit, match=rf"error: {tmp_path}: not a w2v2 checkpoint \(no w2v2.json\)"):
        main(["export", str(tmp_path), str(tmp_path / "hf")])


def test_one_audio_file_is_data_and_a_bad_manifest_row_is_named(tmp_path: Path) -> None:
    from pretrain.__main__ import main

    one = tmp_path / "one.wav"
    sf.write(one, np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32), 16000)
    main([f"data.path={one}", "optim.max_steps=1", "save_every=1", f"run_dir={tmp_path / 'run'}", *FAST[:-1],
          "threads=1"])
    assert (tmp_path / "run" / "checkpoints" / "step_00000001" / "model.safetensors").is_file()
    manifest = tmp_path / "list.tsv"
    manifest.write_text("path\tnum_samples\none.wav\t32000\n\none.wav\t16000.5\n")
    with pytest.raises(SystemExit, match=rf"{manifest}, row 4: num_samples '16000.5' is not a whole number of "
                                         r"samples \(at 16 kHz\); fix the row, or drop the column"):
        main([f"data.path={manifest}", "optim.max_steps=1", f"run_dir={tmp_path / 'bad'}", *FAST[:-1], "threads=1"])
    manifest.write_text("path\tnum_samples\none.wav\t32000\n\t32000\n")
    with pytest.raises(SystemExit, match=rf"{manifest}, row 3: no path"):
        main([f"data.path={manifest}", "optim.max_steps=1", f"run_dir={tmp_path / 'bad'}", *FAST[:-1], "threads=1"])
    (tmp_path / "notes.bin").write_bytes(bytes(range(128, 256)))
    with pytest.raises(SystemExit, match=r"notes.bin: neither audio \(.wav, .*, .mp3, .*\) nor a CSV/TSV"):
        main([f"data.path={tmp_path / 'notes.bin'}", f"run_dir={tmp_path / 'bad'}", *FAST[:-1], "threads=1"])


def test_a_checkpoint_that_hits_a_full_disk_leaves_none_behind_and_latest_as_it_was(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    import torch

    from pretrain import state
    from w2v2 import checkpoint
    from w2v2.config import preset
    from w2v2.model import build_model

    model = build_model(preset("tiny"), "pretrain")
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    first = state.save_checkpoint(tmp_path, model, opt, sched, {"step": 10}, {}, keep=2)

    def torch_save_fails(obj, path) -> None:
        Path(path).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", torch_save_fails)
    with pytest.raises(checkpoint.DiskFullError, match=r"trainer.pt: no space left on the device"):
        state.save_checkpoint(tmp_path, model, opt, sched, {"step": 20}, {}, keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", first.name]
    assert state.latest_checkpoint(tmp_path) == first
