"""Fine-tuning end to end on tiny data: train -> predict -> submission; hf: init; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from finetune.__main__ import main
from finetune.config import FinetuneConfig
from finetune.model import build_classifier
from w2v2.synth import generate_corpus

FAST = ["epochs=1", "batch_size=4", "crop_seconds=1.5", "augmentation.noise_prob=1.0"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    generate_corpus(root, clips=48, speakers=6, seed=0)
    return root


@pytest.fixture(scope="module")
def run(corpus: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    main(["train", "--data", str(corpus), "--run", str(out), *FAST])
    return out


def test_train_writes_metrics_plots_and_a_submission_in_sample_order(corpus: Path, run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("validation", "test"):
        m = metrics[split]
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["uar"] <= 1 and 0 <= m["macro_f1"] <= 1
        assert np.asarray(m["confusion_matrix"]).sum() == m["n"] > 0
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
    assert (df.label == probs.argmax(1)).all() and df.label.between(0, 5).all()


def test_evaluate_scores_a_competition_folder_with_test_labels(corpus: Path, run: Path, tmp_path) -> None:
    main(["evaluate", "--ckpt", str(run), "--data", str(corpus), "--out", str(tmp_path / "m.json")])
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["n"] == len(pd.read_csv(corpus / "test.csv"))


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
    with pytest.warns(UserWarning, match="NaN"):
        main(["train", "--data", str(data), "--run", str(tmp_path / "r2"), "--skip-bad", "augment=false", *FAST])
    assert json.loads((tmp_path / "r2" / "metrics.json").read_text())["validation"]["n"] > 0


def test_cli_accepts_overrides_and_inputs_on_both_sides_of_options() -> None:
    from finetune.__main__ import parse_args

    a = parse_args(["train", "epochs=2", "--data", "d", "--skip-bad", "lr=0.1"])
    assert a.overrides == ["epochs=2", "lr=0.1"] and a.skip_bad and a.data == Path("d")
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
