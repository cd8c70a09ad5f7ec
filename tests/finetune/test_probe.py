"""`python -m finetune train --probe`: a linear probe on the frozen backbone, saved as an ordinary classifier."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from finetune.__main__ import main
from finetune.probe import pooled_logits
from w2v2.checkpoint import PRETRAINED_DIR, load_model
from w2v2.data.datasets import load_dataset
from w2v2.emotion.windows import AudioCache, cached_waves, layer_means, predict_probs
from w2v2.heads import ClassificationHead

pytestmark = pytest.mark.slow  # CLI runs end to end: make test-fast leaves them out


@pytest.fixture(scope="module")
def corpus(synthetic_corpus) -> Path:
    return synthetic_corpus(clips=36, speakers=6, seed=4)


@pytest.fixture(scope="module")
def probe_run(corpus: Path, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("probe") / "run"
    main(["train", "--data", str(corpus), "--init", "pretrained:small", "--config", "configs/finetune/small.yaml",
          "--probe", "--members", "1", "--run", str(run), "probe_epochs=15", "threads=1"])
    return run


def test_the_saved_probe_is_the_head_on_cached_features_and_the_backbone_untouched(corpus: Path,
                                                                                   probe_run: Path) -> None:
    model = load_model(probe_run / "best").eval()
    assert model.cfg.head.standardize and model.cfg.head.weighted_layer_sum
    # the backbone is exactly the shipped checkpoint's
    shipped = load_file(str(PRETRAINED_DIR / "small" / "model.safetensors"))
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, shipped["backbone." + k]), k
    data = load_dataset(corpus)
    items = data.test
    feats = layer_means(model, items, window_seconds=8.0)
    with torch.no_grad():
        cached = torch.softmax(pooled_logits(model.head, feats), -1)
    # the whole model on waveforms (frames standardised, summed, pooled) = the head on pooled vectors
    probs = predict_probs(model, cached_waves(AudioCache(items), len(items)), window_seconds=8.0)
    torch.testing.assert_close(probs, cached, atol=1e-5, rtol=1e-4)
    assert (probs.std(0) > 1e-3).any()  # it tells clips apart
    # the standardisation holds the training clips' statistics (not the identity it starts as), and the
    # head applies it: the same head without it, on explicitly standardised vectors, gives the same logits
    mean, std = model.head.input_mean, model.head.input_std
    assert not torch.allclose(mean, torch.zeros_like(mean)) and not torch.allclose(std, torch.ones_like(std))
    plain = ClassificationHead(replace(model.cfg.head, standardize=False), feats.shape[-1], feats.shape[1]).eval()
    plain.load_state_dict({k: v for k, v in model.head.state_dict().items() if not k.startswith("input_")})
    with torch.no_grad():
        torch.testing.assert_close(pooled_logits(plain, (feats - mean) / std), pooled_logits(model.head, feats))
        assert not torch.allclose(pooled_logits(plain, feats), pooled_logits(model.head, feats), atol=1e-3)


def test_probe_run_folder_reports_its_best_epoch_and_scores_like_any_run(corpus: Path, probe_run: Path,
                                                                        tmp_path: Path) -> None:
    metrics = json.loads((probe_run / "metrics.json").read_text())
    history = [json.loads(line) for line in (probe_run / "history.jsonl").read_text().splitlines()]
    assert len(history) == 15
    best = max(history, key=lambda h: h["val_uar"])
    assert metrics["best_epoch"] == best["epoch"]
    # validation through the saved model on waveforms agrees with the probe's own choice
    assert metrics["validation"]["uar"] == pytest.approx(best["val_uar"], abs=1e-9)
    assert (probe_run / "submission.csv").is_file() and "test" in metrics
    out = tmp_path / "eval.json"
    main(["evaluate", "--ckpt", str(probe_run), "--ckpt", str(probe_run), "--data", str(corpus), "--out", str(out)])
    assert json.loads(out.read_text())["uar"] == pytest.approx(metrics["test"]["uar"])  # an ensemble member too


def test_probe_needs_a_pretrained_init_and_does_not_export(corpus: Path, probe_run: Path, tmp_path: Path) -> None:
    from w2v2.convert import save_hf

    with pytest.raises(ValueError, match="head.standardize=false"):  # transformers has no such step
        save_hf(load_model(probe_run / "best"), tmp_path / "hf")
    with pytest.raises(SystemExit, match="--probe judges a pretrained backbone"):
        main(["train", "--data", str(corpus), "--init", "scratch", "--probe", "--run", str(tmp_path / "a")])
