"""`python -m finetune report`: the page's numbers are the run's own; its statistics are pinned on known cases."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from finetune import analysis
from finetune.__main__ import main
from finetune.config import FinetuneConfig
from finetune.metrics import classification_metrics
from finetune.model import build_classifier
from finetune.probe import pooled_logits
from finetune.report import build_report, read_run, render
from finetune.report_plots import layer_weights_figure
from w2v2.checkpoint import load_model, save_model
from w2v2.config import HeadConfig
from w2v2.data.datasets import Item
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.windows import AudioCache, layer_means

pytestmark = pytest.mark.slow  # CLI runs end to end: make test-fast leaves them out

TINY = ["epochs=1", "batch_size=4", "crop_seconds=1.5", "threads=1"]


@pytest.fixture(scope="module")
def corpus(synthetic_corpus) -> Path:
    return synthetic_corpus(clips=36, speakers=6, seed=4)


def trained(corpus: Path, folder: Path, *args: str) -> Path:
    main(["train", "--data", str(corpus), "--run", str(folder), *args])
    return folder


@pytest.fixture(scope="module")
def single_run(corpus: Path, tmp_path_factory, one_thread) -> Path:
    return trained(corpus, tmp_path_factory.mktemp("single") / "run", "--init", "scratch", *TINY)


@pytest.fixture(scope="module")
def probe_run(corpus: Path, tmp_path_factory, one_thread) -> Path:
    return trained(corpus, tmp_path_factory.mktemp("probe") / "run", "--init", "pretrained:small", "--probe",
                   "--members", "1", "probe_epochs=5", "threads=1")


@pytest.fixture(scope="module")
def folds_run(corpus: Path, tmp_path_factory, one_thread) -> Path:
    return trained(corpus, tmp_path_factory.mktemp("folds") / "run", "--init", "scratch", "--folds", "2", *TINY)


def headline_row(page: str, split: str) -> list[str]:
    """The cells of the metrics table's row of `split`."""
    row = re.search(rf"<tr><td>{split}</td>(.*?)</tr>", page).group(1)
    return re.findall(r"<td>(.*?)</td>", row)


def test_the_report_shows_metrics_json_numbers(single_run: Path) -> None:
    saved = json.loads((single_run / "metrics.json").read_text())
    report = build_report(single_run)
    assert report.metrics == {"validation": saved["validation"], "test": saved["test"]}
    page = render(report)
    for split in ("validation", "test"):
        m = saved[split]
        n, acc, uar, _, f1 = headline_row(page, split)
        assert [n, acc, uar, f1] == [str(m["n"]), f"{m['accuracy']:.3f}", f"{m['uar']:.3f}", f"{m['macro_f1']:.3f}"]
    # val_probs.csv agrees with metrics.json, so no disagreement is reported
    assert not any("differs" in n for n in report.notes)
    titles = [t for t, _ in report.sections]
    assert titles == ["Recipe", "Metrics", "Confusion matrices", "Learning curves", "Which layers carry emotion",
                      "Validation embeddings (PCA)", "Calibration"]


def test_a_probability_file_that_disagrees_with_metrics_json_is_reported(single_run: Path, tmp_path: Path) -> None:
    run = shutil.copytree(single_run, tmp_path / "run")
    df = pd.read_csv(run / "val_probs.csv")
    df["label"] = (df["label"] + 1) % len(EMOTIONS)  # every clip now counts as wrong
    df.to_csv(run / "val_probs.csv", index=False)
    report = build_report(run)
    assert any(n.startswith("validation: the probability file's argmax differs") for n in report.notes)
    assert report.metrics["validation"] == json.loads((run / "metrics.json").read_text())["validation"]


def test_missing_audio_skips_the_embeddings_with_a_note(single_run: Path, tmp_path: Path) -> None:
    run = shutil.copytree(single_run, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "data": str(tmp_path / "moved")}))
    df = pd.read_csv(run / "val_probs.csv")
    df.assign(path=[str(tmp_path / "moved" / Path(p).name) for p in df["path"]]).to_csv(run / "val_probs.csv",
                                                                                        index=False)
    report = build_report(run)
    titles = [t for t, _ in report.sections]
    assert "Validation embeddings (PCA)" not in titles and "Metrics" in titles
    assert any("validation audio was not found" in n for n in report.notes)
    assert any("training data was not found" in n for n in report.notes)


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_clips() -> None:
    true = np.repeat(np.arange(6), 5)
    pred = true.copy()
    pred[::3] = (pred[::3] + 1) % 6  # 10 of 30 clips wrong, spread over the classes
    cm = np.asarray(classification_metrics(true, pred)["confusion_matrix"])
    uar = classification_metrics(true, pred)["uar"]
    low, high = analysis.bootstrap_uar(cm)
    assert low < uar < high
    low4, high4 = analysis.bootstrap_uar(cm * 4)  # the same confusions on four times the clips
    assert low < low4 < uar < high4 < high
    # with sqrt(n) statistics the width halves for 4x the clips (within the bootstrap's noise)
    assert (high4 - low4) / (high - low) == pytest.approx(0.5, abs=0.12)
    assert analysis.bootstrap_uar(np.diag([5] * 6)) == (1.0, 1.0)  # nothing to resample but right answers


def test_calibration_and_confidently_wrong_on_known_cases() -> None:
    labels = np.array([0, 0, 1, 1])
    probs = np.full((4, 6), 0.02)
    probs[:, 0] = 0.9  # always angry at 0.9: half right
    cal = analysis.calibration(labels, probs)
    assert cal.ece == pytest.approx(0.4)
    assert cal.count[9] == 4 and cal.accuracy[9] == pytest.approx(0.5)
    probs[2, 0] = 0.95
    assert analysis.confidently_wrong(labels, probs) == [(2, 1, 0, 0.95), (3, 1, 0, 0.9)]
    # bins weighted by their clips: three right at 0.9 (gap 0.1), one wrong at 0.3 (gap 0.3)
    two = np.array([[0.9, 0.1, 0, 0, 0, 0]] * 3 + [[0.3, 0.25, 0.25, 0.2, 0, 0]])
    assert analysis.calibration(np.array([0, 0, 0, 1]), two).ece == pytest.approx((3 * 0.1 + 0.3) / 4)
    right = np.eye(6)[[0, 1, 2]]
    assert analysis.calibration(np.array([0, 1, 2]), right).ece == 0.0


def test_pca_finds_the_axis_of_a_line() -> None:
    t = np.linspace(-1, 1, 20)
    x = np.outer(t, [3.0, 4.0, 0.0]) + 7.0
    xy, share = analysis.pca_2d(x)
    assert share[0] == pytest.approx(1.0)
    np.testing.assert_allclose(np.abs(xy[:, 0]), np.abs(5 * t), atol=1e-9)


def test_one_bar_per_layer_with_the_heads_softmax_weights(probe_run: Path, tmp_path: Path) -> None:
    model = load_model(probe_run / "best")
    w = analysis.layer_weights(probe_run / "best")
    assert len(w) == model.cfg.context.layers + 1
    torch.testing.assert_close(torch.from_numpy(w), torch.softmax(model.head.layer_weights.detach(), -1))
    fig = layer_weights_figure({"probe": w, "other": np.full(len(w), 1 / len(w))})
    for ax in fig.axes:
        assert len(ax.patches) == len(w)
    np.testing.assert_allclose([p.get_height() for p in fig.axes[0].patches], w)
    plain = build_classifier(FinetuneConfig(init="scratch", preset="tiny", head=HeadConfig(num_labels=6)))
    assert analysis.layer_weights(save_model(plain, tmp_path / "plain")) is None


def test_the_embedding_is_what_the_probe_head_reads(probe_run: Path) -> None:
    model = load_model(probe_run / "best").eval()
    assert read_run(probe_run).models == [probe_run]
    val = pd.read_csv(probe_run / "val_probs.csv")
    clips = [Item(i, Path(p), y) for i, p, y in zip(val["id"], val["path"], val["label"], strict=True)]
    emb = torch.from_numpy(analysis.utterance_embeddings(model, clips, 8.0))
    with torch.no_grad():  # mean pooling is linear: the classifier on the projected embedding is the head
        logits = model.head.classifier(model.head.projector(emb))
        expected = pooled_logits(model.head, layer_means(model, clips, 8.0, cache=AudioCache(clips)))
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


def test_report_of_a_probe(probe_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "page.html"
    main(["report", str(probe_run), "--out", str(out)])
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<h1>probe run</h1>" in page
    assert "linear probe(s) of the frozen pretrained:small" in page
    # confusion (validation, test), curves, layers, embeddings, two reliability diagrams
    assert page.count("data:image/png;base64,") == 7
    saved = json.loads((probe_run / "metrics.json").read_text())
    assert headline_row(page, "test")[2] == f"{saved['test']['uar']:.3f}"


def test_report_of_a_kfold_parent(folds_run: Path) -> None:
    saved = json.loads((folds_run / "metrics.json").read_text())
    report = build_report(folds_run)
    assert report.title == "ensemble run"
    assert report.metrics == {"oof": saved["oof"], "test": saved["test"]}
    page = render(report)
    assert headline_row(page, "out-of-fold")[2] == f"{saved['oof']['uar']:.3f}"
    for member in saved["members"]:  # each member's UAR beside the ensemble's
        assert f"<td>{member['name']}</td><td>finetune</td>" in page
        assert f"<td>{member['validation']['uar']:.3f}</td>" in page
    assert "<td>ensemble (oof)</td>" in page and "<td>ensemble (test)</td>" in page
    titles = [t for t, _ in report.sections]
    assert "Learning curves and members" in titles and "Validation embeddings (PCA)" in titles
    n = len(pd.read_csv(folds_run / "fold_1" / "val_probs.csv"))
    assert f"fold_1's {n} validation clips" in page
