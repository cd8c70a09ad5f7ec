"""Fine-tuning end to end on tiny data: train -> predict -> submission; hf: init; bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from finetune.__main__ import main
from finetune.config import FinetuneConfig
from finetune.model import build_classifier

pytestmark = pytest.mark.slow  # CLI runs end to end: make test-fast leaves them out

FAST = ["init=scratch", "epochs=1", "batch_size=4", "crop_seconds=1.5", "augmentation.noise_prob=1.0"]


@pytest.fixture(scope="module")
def corpus(synthetic_corpus) -> Path:
    return synthetic_corpus(clips=48, speakers=6, seed=0)


@pytest.fixture(scope="module")
def run(corpus: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    main(["train", "--data", str(corpus), "--run", str(out), *FAST])
    return out


def test_train_writes_metrics_plots_and_a_submission_in_sample_order(corpus: Path, run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("validation", "test"):
        m = metrics[split]
        cm = np.asarray(m["confusion_matrix"])  # rows: true class; the scores follow from it
        assert cm.sum() == m["n"] > 0
        assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
        recalls = [cm[c, c] / cm[c].sum() for c in range(len(cm)) if cm[c].sum()]
        assert m["uar"] == pytest.approx(np.mean(recalls))
    for name in ("confusion_matrix.png", "curves.png", "config.yaml", "best/model.safetensors"):
        assert (run / name).is_file(), name
    sample = pd.read_csv(corpus / "sample_submission.csv")
    sub = pd.read_csv(run / "submission.csv")
    assert list(sub.columns) == list(sample.columns) and list(sub.id) == list(sample.id)
    assert sub.label.between(0, 5).all()


def test_predict_gives_labels_and_probabilities_also_for_long_files(corpus: Path, run: Path, tmp_path) -> None:
    long_clip = tmp_path / "long.flac"
    wave, _ = sf.read(corpus / pd.read_csv(corpus / "test.csv").path[0])
    sf.write(long_clip, np.tile(wave, 8)[:16000 * 20], 16000)  # 20 s: several windows
    stereo = tmp_path / "stereo_44k.wav"
    sf.write(stereo, np.stack([wave, wave], 1)[:: 1], 44100)
    out = tmp_path / "preds.csv"
    main(["predict", "--ckpt", str(run), str(corpus / "test"), str(long_clip), str(stereo), "--out", str(out)])
    df = pd.read_csv(out)
    assert len(df) == len(list((corpus / "test").glob("*.wav"))) + 2
    probs = df[[c for c in df.columns if c.startswith("p_")]].to_numpy()
    assert probs.shape[1] == 6 and np.allclose(probs.sum(1), 1, atol=1e-3)
    speech = df.label_name != "no speech"
    assert (df.label[speech] == probs[speech].argmax(1)).all() and df.label[speech].between(0, 5).all()
    assert (df.label[~speech] == -1).all() and speech[:-1].all()  # the clips of speech keep their emotion


def test_evaluate_scores_a_competition_folder_with_test_labels(corpus: Path, run: Path, tmp_path, capsys) -> None:
    main(["evaluate", "--ckpt", str(run), "--data", str(corpus), "--out", str(tmp_path / "m.json")])
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["n"] == len(pd.read_csv(corpus / "test.csv"))
    shown = "recall per class: " + "  ".join(f"{k} {v:.2f}" for k, v in m["per_class_recall"].items() if v is not None)
    assert shown in capsys.readouterr().out  # printed, not only in --out


def test_hf_init_predicts_like_transformers(tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                                         num_conv_pos_embedding_groups=2, num_labels=6, classifier_proj_size=16)
    torch.manual_seed(0)
    hf = transformers.Wav2Vec2ForSequenceClassification(config).eval()
    hf.save_pretrained(tmp_path / "hf")
    ours = build_classifier(FinetuneConfig(init=f"hf:{tmp_path / 'hf'}")).eval()
    wave = torch.randn(8, 8000)
    with torch.no_grad():
        expected = hf(wave).logits
        got = ours(wave).logits
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
    assert (got - expected).abs().max() < 1e-4


def test_bad_clips_are_reported_up_front_and_never_crash_training(corpus: Path, tmp_path) -> None:
    data = tmp_path / "data"
    rows = pd.read_csv(corpus / "train.csv").head(24)
    for rel in rows.path:
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes((corpus / rel).read_bytes())
    sf.write(data / "train" / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(data / "train" / "nan.wav", np.full(8000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    sf.write(data / "train" / "short.wav", np.random.default_rng(0).normal(0, 0.1, 100).astype(np.float32), 16000)
    extra = pd.DataFrame({"path": ["train/silent.wav", "train/nan.wav", "train/short.wav", "train/gone.wav"],
                          "label": [4, 2, 1, 0], "speaker": ["spk000", "spk001", "spk002", "spk003"]})
    pd.concat([rows[["path", "label", "speaker"]], extra]).to_csv(data / "labels.csv", index=False)
    with pytest.raises(SystemExit, match="--skip-bad"):
        main(["train", "--data", str(data), "--run", str(tmp_path / "r1"), *FAST])
    with pytest.warns(UserWarning) as caught:
        main(["train", "--data", str(data), "--run", str(tmp_path / "r2"), "--skip-bad", "augment=false", *FAST])
    messages = [str(w.message) for w in caught]
    assert any("nan.wav: NaN/inf samples replaced by zeros" in m for m in messages)
    assert any("short.wav: 100 samples at 16 kHz, shorter than the model's 400 (25 ms): zero-extended" in m
               for m in messages)
    assert json.loads((tmp_path / "r2" / "metrics.json").read_text())["validation"]["n"] > 0


def test_cli_accepts_overrides_and_inputs_on_both_sides_of_options() -> None:
    from finetune.__main__ import parse_args
    from finetune.config import resolve_run

    a = parse_args(["train", "epochs=2", "--data", "d", "--skip-bad", "lr_head=0.1", "model.context.dropout=0.2"])
    assert a.overrides == ["epochs=2", "lr_head=0.1", "model.context.dropout=0.2"]
    assert a.skip_bad and a.data == ["d"]
    cfg = resolve_run(None, a.overrides)  # model.* entries merge into fine-tuning's defaults, key by key
    assert (cfg.epochs, cfg.lr_head, cfg.model["context"]["dropout"], cfg.model["context"]["layerdrop"]) == (
        2, 0.1, 0.2, 0.05)
    r = parse_args(["predict", "--ckpt", "run", "x.wav", "--out", "p.csv", "y.wav"])
    assert r.inputs == [Path("x.wav"), Path("y.wav")] and r.out == Path("p.csv")
    with pytest.raises(SystemExit):
        parse_args(["train", "--data", "d", "--no-such-flag"])


def test_init_from_a_pretraining_run_folder_takes_its_latest_backbone(tmp_path) -> None:
    from w2v2.checkpoint import save_model
    from w2v2.config import preset
    from w2v2.model import build_model

    run = tmp_path / "pretrain_run"
    old, new = (build_model(preset("tiny"), "pretrain") for _ in range(2))
    save_model(old, run / "checkpoints" / "step_00000001")
    save_model(new, run / "checkpoints" / "step_00000002")
    (run / "checkpoints" / "latest").write_text("step_00000002\n")
    clf = build_classifier(FinetuneConfig(init=f"ckpt:{run}"))
    for name, p in new.backbone.state_dict().items():
        assert torch.equal(clf.backbone.state_dict()[name], p), name
    with pytest.raises(FileNotFoundError, match="not a w2v2 checkpoint"):
        build_classifier(FinetuneConfig(init=f"ckpt:{tmp_path / 'nothing'}"))


# ---------------------------------------------------------------------------------------------
# Bad input and re-runs (issue 11): each case a clear error before the work, or handled correctly.


def tiny_checkpoint(folder: Path, kind: str = "classifier", seed: int = 0) -> Path:
    """A fine-tuning-like run folder (folder/best) or, for kind="pretrain", a pretraining run folder."""
    from w2v2.checkpoint import save_model
    from w2v2.config import apply_overrides, preset
    from w2v2.model import build_model

    torch.manual_seed(seed)
    model = build_model(apply_overrides(preset("tiny"), ["head.num_labels=6"]), kind)
    if kind == "classifier":
        return save_model(model, folder / "best").parent
    save_model(model, folder / "checkpoints" / "step_00000001")
    (folder / "checkpoints" / "latest").write_text("step_00000001\n")
    return folder


def clip_file(path: Path, seconds: float, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(seed).normal(0, 0.1, int(16000 * seconds)).astype(np.float32), 16000)
    return path


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_a_clips_prediction_is_the_same_alone_and_among_other_clips(norm: str) -> None:
    from w2v2.config import apply_overrides, preset
    from w2v2.emotion.windows import predict_probs
    from w2v2.model import build_model

    torch.manual_seed(0)
    cfg = apply_overrides(preset("tiny"), [f"encoder.norm={norm}", "head.num_labels=6"])
    model = build_model(cfg, "classifier").eval()
    g = torch.Generator().manual_seed(0)
    clip, longer, long_file = (torch.randn(n, generator=g) * 0.1 for n in (8000, 24000, 16000 * 20))
    alone = predict_probs(model, [clip], window_seconds=8.0)[0]
    in_folder = predict_probs(model, [longer, clip, long_file], window_seconds=8.0)  # one batch of 8 before
    assert torch.allclose(in_folder[1], alone, atol=1e-6), (in_folder[1] - alone).abs().max()
    assert torch.allclose(in_folder[2], predict_probs(model, [long_file], 8.0)[0], atol=1e-6)


def test_a_run_folder_holding_a_run_is_refused_or_with_overwrite_replaced(corpus: Path, run: Path, tmp_path) -> None:
    before = (run / "best" / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit, match=r"already holds a finished run .*pass --overwrite"):
        main(["train", "--data", str(corpus), "--run", str(run), *FAST])
    assert (run / "best" / "model.safetensors").read_bytes() == before
    killed = tmp_path / "killed"  # a run killed in epoch 2: history, best/, no metrics.json
    (killed / "best").mkdir(parents=True)
    (killed / "history.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    (killed / "submission.csv").write_text("id,label\nstale,0\n")
    (killed / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match=r"already holds an unfinished run \(no metrics.json\)"):
        main(["train", "--data", str(corpus), "--run", str(killed), *FAST])
    data = tmp_path / "labels.csv"  # a dataset without a test set: nothing rewrites submission.csv
    rows = pd.read_csv(corpus / "train.csv").head(24)
    rows.assign(path=[str(corpus / p) for p in rows.path]).to_csv(data, index=False)
    with pytest.raises(SystemExit, match="no such file or folder"):  # --overwrite waits for the data to be checked
        main(["train", "--data", str(tmp_path / "typo"), "--run", str(killed), "--overwrite", *FAST])
    assert (killed / "submission.csv").is_file() and (killed / "history.jsonl").is_file()
    main(["train", "--data", str(data), "--run", str(killed), "--overwrite", *FAST])
    assert [json.loads(line)["epoch"] for line in (killed / "history.jsonl").read_text().splitlines()] == [1]
    assert not (killed / "submission.csv").exists() and (killed / "notes.txt").read_text() == "mine"
    assert (killed / "metrics.json").is_file() and (killed / "best" / "model.safetensors").is_file()


def test_one_speaker_trains_with_a_random_split_instead_of_crashing(corpus: Path, tmp_path, capsys) -> None:
    rows = pd.read_csv(corpus / "train.csv").head(24)
    rows.assign(speaker="solo", path=[str(corpus / p) for p in rows.path]).to_csv(tmp_path / "labels.csv", index=False)
    main(["train", "--data", str(tmp_path / "labels.csv"), "--run", str(tmp_path / "r"), *FAST])
    assert "only one speaker: stratified random split" in capsys.readouterr().out
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["validation"]["n"] > 0


@pytest.fixture(scope="module")
def damaged(corpus: Path, tmp_path_factory) -> tuple[Path, Path]:
    """A competition folder whose test_labels.csv misses two ids and whose first test file is corrupt,
    trained with --skip-bad."""
    import shutil

    root = tmp_path_factory.mktemp("damaged") / "data"
    shutil.copytree(corpus, root)
    labels = pd.read_csv(root / "test_labels.csv")
    labels.iloc[2:].to_csv(root / "test_labels.csv", index=False)
    test = pd.read_csv(root / "test.csv").set_index("id")
    (root / test.path[labels.id.iloc[-1]]).write_bytes(b"RIFF not audio at all")  # a labelled clip
    out = root.parent / "run"
    main(["train", "--data", str(root), "--run", str(out), "--skip-bad", *FAST])
    return root, out


def test_test_labels_missing_ids_score_the_labelled_test_clips(damaged: tuple[Path, Path], tmp_path) -> None:
    root, out = damaged
    labelled = len(pd.read_csv(root / "test_labels.csv"))
    assert json.loads((out / "metrics.json").read_text())["test"]["n"] == labelled
    main(["evaluate", "--ckpt", str(out), "--data", str(root), "--out", str(tmp_path / "m.json"), "--skip-bad"])
    assert json.loads((tmp_path / "m.json").read_text())["n"] == labelled - 1  # the corrupt one is skipped


def test_skip_bad_test_files_keep_their_submission_rows(damaged: tuple[Path, Path]) -> None:
    root, out = damaged
    sub, sample = pd.read_csv(out / "submission.csv"), pd.read_csv(root / "sample_submission.csv")
    assert list(sub.id) == list(sample.id) and sub.label.between(0, 5).all()
    # the corrupt clip holds no evidence: 1/6 each, as predict answers it (not the network's answer to silence)
    corrupt = pd.read_csv(root / "test_labels.csv").id.iloc[-1]
    probs = pd.read_csv(out / "test_probs.csv").set_index("id")
    cols = [c for c in probs.columns if c.startswith("p_")]
    assert np.allclose(probs.loc[corrupt, cols].to_numpy(float), 1 / 6)
    assert not np.allclose(probs.drop(index=corrupt)[cols].to_numpy(), 1 / 6, atol=1e-3)


def test_a_file_whose_header_reads_but_whose_audio_does_not_stops_evaluate_and_submit(corpus: Path, tmp_path,
                                                                                      capsys) -> None:
    """A damaged FLAC body passes the header check; decoding finds it: listed, and stop unless --skip-bad (submit
    had written its row as 1/6 silence, scored among the others). An empty labelled CSV is an error, not a crash."""
    import io
    import shutil

    import soundfile as sf

    root = tmp_path / "data"
    shutil.copytree(corpus, root)
    test = pd.read_csv(root / "test.csv")
    victim = root / test.path[0]
    buf = io.BytesIO()
    sf.write(buf, sf.read(str(victim))[0], 16000, format="FLAC")
    flac = bytearray(buf.getvalue())
    flac[len(flac) // 2:len(flac) // 2 + 2000] = bytes(range(256)) * 7 + bytes(208)  # the body, not the header
    victim.write_bytes(bytes(flac))
    sf.info(str(victim))  # the header still reads
    out = tmp_path / "sub"
    with pytest.raises(SystemExit, match="--skip-bad"):
        main(["submit", "--data", str(root), "--out", str(out)])
    assert f"1 of {len(test)} test files could not be decoded" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())  # nothing written
    main(["submit", "--data", str(root), "--out", str(out), "--skip-bad"])
    probs = pd.read_csv(out / "test_probs.csv").set_index("id")
    assert np.allclose(probs.loc[test.id[0], [c for c in probs.columns if c.startswith("p_")]].to_numpy(float), 1 / 6)
    with pytest.raises(SystemExit, match="--skip-bad"):
        main(["evaluate", "--data", str(root)])
    main(["evaluate", "--data", str(root), "--skip-bad", "--out", str(tmp_path / "m.json")])
    assert json.loads((tmp_path / "m.json").read_text())["n"] == len(pd.read_csv(root / "test_labels.csv")) - 1
    (tmp_path / "empty.csv").write_text("path,label\n")
    with pytest.raises(SystemExit, match="no clips to evaluate"):
        main(["evaluate", "--data", str(tmp_path / "empty.csv")])


def test_predict_and_evaluate_refuse_a_pretraining_run(corpus: Path, tmp_path) -> None:
    pre = tiny_checkpoint(tmp_path / "pretrain_run", kind="pretrain")
    for argv in (["predict", "--ckpt", str(pre), str(corpus / "test")],
                 ["evaluate", "--ckpt", str(pre), "--data", str(corpus)]):
        with pytest.raises(SystemExit, match=r"step_00000001: a pretrain checkpoint, not an emotion classifier; "
                                             r"fine-tune it first: python -m finetune train --init ckpt:"):
            main(argv)


def test_nan_weights_or_outputs_are_errors_naming_the_checkpoint(corpus: Path, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    test_dir = str(corpus / "test")
    for name, value in (("nan", float("nan")), ("overflow", 3e38)):  # 3e38 is finite; the logits are not
        weights = tiny_checkpoint(tmp_path / name) / "best" / "model.safetensors"
        state = load_file(str(weights))
        state["head.classifier.weight"].fill_(value)
        save_file(state, str(weights))
        with pytest.raises(SystemExit, match=rf"{name}/best: non-finite|{name}/best: the model outputs NaN/inf"):
            main(["predict", "--ckpt", str(tmp_path / name), test_dir, "--out", str(tmp_path / f"{name}.csv")])
        assert not (tmp_path / f"{name}.csv").exists()


def test_predict_fails_when_no_input_could_be_decoded(tmp_path) -> None:
    ckpt = tiny_checkpoint(tmp_path / "run")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF....WAVE garbage")
    (tmp_path / "corrupt2.wav").write_bytes(b"")
    with pytest.raises(SystemExit, match=r"none of the 2 file\(s\) could be decoded"):
        main(["predict", "--ckpt", str(ckpt), str(tmp_path / "corrupt.wav"), str(tmp_path / "corrupt2.wav"),
              "--out", str(tmp_path / "p.csv")])
    assert not (tmp_path / "p.csv").exists()
    # a named file that does not exist is an error before any work, naming it
    with pytest.raises(SystemExit, match=r"no such file or folder: .*gone\.wav"):
        main(["predict", "--ckpt", str(ckpt), str(tmp_path / "corrupt.wav"), str(tmp_path / "gone.wav")])


def test_window_seconds_zero_or_negative_is_a_usage_error(tmp_path, capsys) -> None:
    for value in ("0", "-2"):
        with pytest.raises(SystemExit) as e:
            main(["predict", "--ckpt", str(tmp_path), str(tmp_path), "--window-seconds", value])
        assert e.value.code == 2
        assert f"--window-seconds={float(value)} is out of range: must be >= 0.025" in capsys.readouterr().err


def test_output_paths_are_checked_before_the_work(corpus: Path, tmp_path, monkeypatch) -> None:
    import finetune.predict

    ckpt = tiny_checkpoint(tmp_path / "run")
    clip = clip_file(tmp_path / "a.wav", 1.0, 0)
    monkeypatch.setattr(finetune.predict, "predict_files", lambda *a: pytest.fail("predicted before the check"))
    with pytest.raises(SystemExit, match=r"--out .*: is a folder; give a file name"):
        main(["predict", "--ckpt", str(ckpt), str(clip), "--out", str(tmp_path)])
    monkeypatch.undo()
    main(["predict", "--ckpt", str(ckpt), str(clip), "--out", str(tmp_path / "new" / "sub" / "p.csv")])
    assert len(pd.read_csv(tmp_path / "new" / "sub" / "p.csv")) == 1  # a missing folder is created
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit, match=r"--run .*file: is a file, not a folder"):
        main(["train", "--data", str(corpus), "--run", str(tmp_path / "file"), *FAST])
    with pytest.raises(SystemExit, match=r"--run .*file/run: .*file is a file, so no folder can be made there"):
        main(["train", "--data", str(corpus), "--run", str(tmp_path / "file" / "run"), *FAST])
    with pytest.raises(SystemExit, match=r"--out .*file/m.json: .*file is a file, so no folder can be made there"):
        main(["evaluate", "--ckpt", str(ckpt), "--data", str(corpus), "--out", str(tmp_path / "file" / "m.json")])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_folder_is_refused_before_training(corpus: Path, tmp_path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(SystemExit, match=r"--run .*ro/run: cannot write into"):
        main(["train", "--data", str(corpus), "--run", str(ro / "run"), *FAST])


def test_a_diverging_run_stops_with_a_clear_error_and_saves_no_nan_model(corpus: Path, tmp_path) -> None:
    with pytest.raises(SystemExit, match=r"epoch 1: .*NaN/inf.*lower lr_head/lr_backbone \(no model was saved\)"):
        main(["train", "--data", str(corpus), "--run", str(tmp_path / "r"), *FAST, "lr_head=1e30", "lr_backbone=1e30"])
    assert not (tmp_path / "r" / "best").exists()


def test_a_frozen_cnn_keeps_its_initial_weights_and_a_warm_up_trains_only_the_head(synthetic_corpus, tmp_path,
                                                                                   one_thread) -> None:
    from finetune.config import resolve_run
    from finetune.model import build_classifier
    from finetune.train import train
    from w2v2.checkpoint import load_model
    from w2v2.data.datasets import load_dataset

    data = load_dataset(synthetic_corpus(clips=24, speakers=4, seed=2))
    rest = {"head", "context", "feature_projection", "mask_emb"}  # all but the CNN
    for name, overrides, moved in (("cnn", ["freeze_feature_encoder=true"], rest),
                                   ("warm", ["freeze_feature_encoder=false", "freeze_transformer_steps=1000"],
                                    {"head", "feature_encoder"})):
        cfg = resolve_run("configs/finetune/tiny.yaml", [*overrides, "epochs=1", "batch_size=4", "crop_seconds=1.5"])
        start = build_classifier(cfg).state_dict()
        train(data, cfg, tmp_path / name)
        end = load_model(tmp_path / name / "best").state_dict()
        changed = {k.split(".")[0] if k.startswith("head") else k.split(".")[1]
                   for k in start if not torch.equal(start[k], end[k])}
        assert changed == moved, name


def test_amp_trains_in_bf16_but_predicts_in_fp32(synthetic_corpus, tmp_path, one_thread) -> None:
    """amp=bf16 changes the training steps (other weights than fp32 from the same start), never the
    evaluation: the saved model predicts in fp32, and auto means bf16 exactly where the CPU has it."""
    from finetune.config import resolve_run
    from finetune.train import train
    from w2v2.checkpoint import load_model
    from w2v2.data.datasets import load_dataset
    from w2v2.emotion.windows import predict_probs
    from w2v2.training import autocast, native_bf16, resolve_amp

    layer = torch.nn.Linear(4, 2)
    for amp, dtype in (("none", torch.float32), ("bf16", torch.bfloat16),
                       ("auto", torch.bfloat16 if native_bf16(torch.device("cpu")) else torch.float32)):
        with autocast(resolve_amp(amp, torch.device("cpu")), torch.device("cpu"))[0]:
            assert layer(torch.randn(1, 4)).dtype == dtype, amp
    data = load_dataset(synthetic_corpus(clips=24, speakers=4, seed=2))
    weights = {}
    for amp in ("none", "bf16"):
        cfg = resolve_run("configs/finetune/tiny.yaml", [f"amp={amp}", "epochs=1", "batch_size=4", "crop_seconds=1.5"])
        train(data, cfg, tmp_path / amp)
        weights[amp] = load_model(tmp_path / amp / "best").state_dict()
        assert all(v.dtype != torch.bfloat16 and bool(v.isfinite().all()) for v in weights[amp].values())
    assert any(not torch.equal(weights["none"][k], weights["bf16"][k]) for k in weights["none"])
    model = load_model(tmp_path / "bf16" / "best")
    wave = torch.randn(16000, generator=torch.Generator().manual_seed(0))
    probs = predict_probs(model, [wave], window_seconds=8.0)
    with torch.no_grad():
        fp32 = torch.softmax(model.eval()(wave[None]).logits, -1)
    assert torch.allclose(probs, fp32, atol=1e-6)


def test_the_same_seed_trains_the_same_weights(synthetic_corpus, tmp_path) -> None:
    """Every random draw of a fine-tuning run follows its seed: data order, crops, masks, augmentation,
    dropout and LayerDrop (Python's generator, which nothing else seeds in this process)."""
    from finetune.config import resolve_run
    from finetune.train import train
    from w2v2.checkpoint import load_model
    from w2v2.data.datasets import load_dataset

    data = load_dataset(synthetic_corpus(clips=24, speakers=4, seed=2))
    weights = []
    for name in ("a", "b"):
        cfg = resolve_run("configs/finetune/tiny.yaml", ["epochs=1", "batch_size=4", "crop_seconds=1.5",
                                                         "model.context.layerdrop=0.5"])
        train(data, cfg, tmp_path / name)
        weights.append(load_model(tmp_path / name / "best").state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_evaluate_refuses_a_competition_folder_without_test_labels(synthetic_corpus, tmp_path) -> None:
    import shutil

    root = tmp_path / "comp"
    shutil.copytree(synthetic_corpus(clips=12, speakers=4, seed=3), root)
    (root / "test_labels.csv").unlink()
    ckpt = tiny_checkpoint(tmp_path / "run")
    with pytest.raises(SystemExit, match=rf"{root}: no test labels \(test_labels.csv\) to score the model on; "
                                         rf"train.csv's clips are the training data. To score them anyway: "
                                         rf"--data {root / 'train.csv'}"):
        main(["evaluate", "--ckpt", str(ckpt), "--data", str(root), "--out", str(tmp_path / "m.json")])
    assert not (tmp_path / "m.json").exists()
    main(["evaluate", "--ckpt", str(ckpt), "--data", str(root / "train.csv"), "--out", str(tmp_path / "m.json")])
    assert json.loads((tmp_path / "m.json").read_text())["n"] == len(pd.read_csv(root / "train.csv"))


def test_the_bare_command_prints_usage_and_trains_nothing(capsys, monkeypatch) -> None:
    import finetune.__main__ as cli

    monkeypatch.setattr(cli, "demo", lambda *a: pytest.fail("the bare command started the demo"))
    main([])
    out = capsys.readouterr().out
    assert "python -m finetune train --data DIR" in out and "python -m finetune demo" in out


def test_predicting_more_files_than_shown_writes_them_all_to_a_csv(tmp_path, monkeypatch, capsys) -> None:
    from finetune.predict import SHOWN

    folder = tmp_path / "many"
    folder.mkdir()
    wave = np.sin(np.arange(8000) / 5).astype(np.float32) * 0.1
    for i in range(SHOWN + 3):
        sf.write(folder / f"c{i:02d}.wav", wave, 16000)
    monkeypatch.chdir(tmp_path)
    main(["predict", str(folder)])
    assert len(pd.read_csv(tmp_path / "predictions.csv")) == SHOWN + 3  # nothing computed is lost
    assert "predictions: predictions.csv (3 more rows than shown above)" in capsys.readouterr().out
    main(["predict", str(folder)])  # again: the first file stays, the second goes beside it
    assert len(pd.read_csv(tmp_path / "predictions.csv")) == SHOWN + 3
    assert len(pd.read_csv(tmp_path / "predictions-2.csv")) == SHOWN + 3
    assert "predictions: predictions-2.csv" in capsys.readouterr().out
    (tmp_path / "predictions.csv").write_text("precious")
    main(["predict", str(folder)])
    assert (tmp_path / "predictions.csv").read_text() == "precious"
    assert (tmp_path / "predictions-3.csv").exists()


def test_a_perfect_validation_score_ends_training(synthetic_corpus, tmp_path, monkeypatch, capsys) -> None:
    """Better means strictly higher, so after a validation UAR of 1.0 no epoch can be kept: the run stops
    there and says why (the same best/ and outputs as the epochs it skips would give)."""
    from finetune import train as train_module
    from finetune.config import resolve_run
    from w2v2.data.datasets import load_dataset

    real = train_module.validate
    scores = iter([0.5, 1.0, 0.9, 0.9])

    def scripted(*args, **kwargs):
        return {**real(*args, **kwargs), "uar": next(scores)}

    monkeypatch.setattr(train_module, "validate", scripted)
    data = load_dataset(synthetic_corpus(clips=24, speakers=4, seed=2))
    cfg = resolve_run("configs/finetune/tiny.yaml", ["epochs=4", "patience=4", "batch_size=4", "crop_seconds=1.5"])
    train_module.train(data, cfg, tmp_path / "run")
    epochs = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in epochs] == [1, 2]
    assert "stopping after epoch 2 (best epoch 2; validation UAR is 1.000, which no later epoch can beat)" \
        in capsys.readouterr().out


def test_every_command_takes_the_same_thread_setting(monkeypatch) -> None:
    import finetune.__main__ as cli

    for command in ("train", "evaluate", "predict", "submit", "serve", "report", "export", "demo"):
        required = {"train": ["--data", "d"], "evaluate": ["--data", "d"], "submit": ["--data", "d", "--out", "o"],
                    "report": ["run"], "export": ["--out", "o"], "predict": ["x.wav"]}.get(command, [])
        assert cli.parse_args([command, *required, "--threads", "3"]).threads == 3, command
    called = []
    monkeypatch.setattr(cli, "demo", lambda threads=None: called.append(threads))
    monkeypatch.setattr(cli.torch, "set_num_threads", lambda n: None)
    main(["demo", "--threads", "1"])
    assert called == [1]


def test_predict_given_a_csv_says_it_takes_audio(tmp_path) -> None:
    table = tmp_path / "train.csv"
    table.write_text("id,path,label\na,a.wav,0\n")
    with pytest.raises(SystemExit, match=r"train.csv: a table, not audio: .*evaluate --data"):
        main(["predict", str(table)])


def test_budget_zero_is_refused_and_a_dry_run_checks_the_run_folder(synthetic_corpus, tmp_path, capsys) -> None:
    corpus = synthetic_corpus(24, 4, 0)
    for bad in ("0", "-3", "nan", "inf", "soon"):
        with pytest.raises(SystemExit):
            main(["train", "--data", str(corpus), "--budget-minutes", bad, "--dry-run"])
        err = capsys.readouterr().err
        assert f"--budget-minutes {bad}: give a number of minutes above 0" in err
    a_file = tmp_path / "runfile"
    a_file.write_text("mine")
    with pytest.raises(SystemExit, match="is a file, not a folder"):
        main(["train", "--data", str(corpus), "--run", str(a_file), "--dry-run"])
    assert a_file.read_text() == "mine"


def test_ctrl_c_ends_in_one_line_that_says_how_to_resume(synthetic_corpus, tmp_path, monkeypatch) -> None:
    from finetune import recipe

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(recipe, "train_recipe", interrupted)
    with pytest.raises(SystemExit, match=r"^interrupted: `python -m finetune train --resume --run .*r` continues"):
        main(["train", "--data", str(synthetic_corpus(24, 4, 0)), "--run", str(tmp_path / "r")])


def test_a_file_named_twice_is_predicted_once(tmp_path) -> None:
    """A file and its folder on one command line: one recording, not two copies weighing twice in the set."""
    from finetune.predict import expand

    for name in ("a.wav", "b.wav"):
        sf.write(tmp_path / name, np.zeros(1600, dtype=np.float32), 16000)
    with pytest.warns(UserWarning, match="1 file\\(s\\) given more than once"):
        files = expand([tmp_path, tmp_path / "a.wav"])
    assert sorted(f.name for f in files) == ["a.wav", "b.wav"]
    with pytest.warns(UserWarning, match="2 file\\(s\\) given more than once"):
        assert len(expand([tmp_path, tmp_path / "a.wav", tmp_path / "." / "b.wav"])) == 2
