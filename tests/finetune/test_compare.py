"""python -m finetune.compare: probe and fine-tuning, a checkpoint vs random weights of its architecture."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from finetune.compare import finetune_config, main, parse_args, parse_speakers, split_test
from finetune.model import build_classifier
from w2v2.checkpoint import save_model
from w2v2.config import merge, preset, to_dict
from w2v2.data.datasets import load_dataset
from w2v2.model import build_model

pytestmark = pytest.mark.slow  # CLI runs end to end: make test-fast leaves them out


@pytest.fixture(scope="module")
def corpus(synthetic_corpus) -> Path:
    return synthetic_corpus(clips=24, speakers=4, seed=2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(5)
    cfg = merge(preset("tiny"), {"normalize_waveform": True, "encoder": {"grad_scale": 0.5}})
    return save_model(build_model(cfg, "pretrain"), tmp_path_factory.mktemp("ckpt") / "pt")


def test_test_speakers_are_held_out(corpus: Path) -> None:
    assert parse_speakers("19-21,7") == {"19", "20", "21", "7"}
    data = load_dataset(corpus)
    speakers = sorted({str(it.speaker) for it in data.train})
    train, test = split_test(data, {speakers[0]})
    assert {str(it.speaker) for it in test} == {speakers[0]}
    assert speakers[0] not in {str(it.speaker) for it in train} and len(train) + len(test) == len(data.train)
    with pytest.raises(ValueError, match="not in the data"):
        split_test(data, {"no-such-speaker"})


def test_random_arm_is_the_checkpoint_architecture_with_other_weights(checkpoint: Path) -> None:
    args = parse_args(["--data", "x", "--init", f"ckpt:{checkpoint}", "--config", "configs/finetune/tiny.yaml"])
    pre, rnd = (build_classifier(finetune_config(args, arm, seed=0)) for arm in ("pretrained", "random"))
    assert to_dict(pre.cfg) == to_dict(rnd.cfg)  # grad_scale and normalisation included, not the tiny preset's
    assert rnd.cfg.encoder.grad_scale == 0.5 and rnd.cfg.normalize_waveform
    key = "backbone.context.layers.0.attention.qkv.weight"
    assert not torch.equal(pre.state_dict()[key], rnd.state_dict()[key])


def test_compare_runs_both_modes_and_arms_and_resumes(corpus: Path, checkpoint: Path, tmp_path: Path, capsys) -> None:
    argv = ["--data", str(corpus), "--init", f"ckpt:{checkpoint}", "--config", "configs/finetune/tiny.yaml",
            "--seeds", "2", "--run", str(tmp_path), "--probe-epochs", "5", "epochs=1", "batch_size=4",
            "crop_seconds=1.5"]
    rows = main(argv)
    results = json.loads((tmp_path / "results.json").read_text())
    assert sorted(results) == sorted(f"{m}/{a}/{s}" for m in ("probe", "finetune") for a in ("pretrained", "random")
                                     for s in (0, 1))
    n_test = len(load_dataset(corpus).test)
    for r in results.values():
        assert sum(sum(row) for row in r["test"]["confusion_matrix"]) == n_test
    for row in rows:
        runs = [results[f"{row['mode']}/{row['init']}/{s}"]["test"]["uar"] for s in (0, 1)]
        assert row["uar"] == pytest.approx(statistics.mean(runs)) and row["uar_sd"] == pytest.approx(
            statistics.stdev(runs))
    out = capsys.readouterr().out
    assert "| probe | ckpt:" in out and "| finetune | random weights | 2 |" in out
    assert json.loads(out.strip().splitlines()[-1])["rows"] == json.loads(json.dumps(rows))
    # a second call finds every result stored and trains nothing
    (tmp_path / "results.json").write_text(json.dumps({**results, "probe/pretrained/0": {
        **results["probe/pretrained/0"], "test": {**results["probe/pretrained/0"]["test"], "uar": 0.999}}}))
    again = main(argv)
    assert next(r for r in again if r["mode"] == "probe" and r["init"] == "pretrained")["uar"] == pytest.approx(
        (0.999 + results["probe/pretrained/1"]["test"]["uar"]) / 2)
