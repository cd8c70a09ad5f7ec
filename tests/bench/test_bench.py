"""Smoke run of `python -m w2v2.bench` on the tiny preset: the last printed line is JSON with finite,
positive ratios, and the two sides' classifiers agree (same weights went through save_hf)."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("transformers")

from w2v2.bench.run import main  # noqa: E402

pytestmark = pytest.mark.slow  # CLI runs end to end: make test-fast leaves them out

RATIO_KEYS = ("pretrain_speedup", "pretrain_peak_memory_ratio", "pretrain_step_memory_ratio", "inference_speedup",
              "finetune_speedup", "finetune_cached_speedup")
TINY = ["--preset", "tiny", "--batch", "2", "--seconds", "0.5", "--steps", "2", "--warmup", "1", "--device", "cpu"]


def test_tiny_benchmark_prints_a_table_and_json_ratios(capsys) -> None:
    main([*TINY, "--rounds", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    for key in RATIO_KEYS:
        assert math.isfinite(summary[key]) and summary[key] > 0, key
    assert summary["w2v2_infer_s_per_audio_s"] > 0 and summary["transformers_infer_s_per_audio_s"] > 0
    assert summary["w2v2_finetune_audio_s_per_s"] > 0 and summary["w2v2_cached_audio_s_per_s"] > 0
    assert summary["rounds"] == 2
    table = "\n".join(lines[:-1])
    for row in ("pretrain step fwd+bwd (s)", "prediction (audio s per s)", "fine-tune step, CNN frozen",
                "the same from cached CNN features"):
        assert row in table
    assert "round spread" in table
    diff = float(table.split("max |logit difference| ")[1].split()[0])
    assert diff < 1e-4


def test_the_same_weights_check_feeds_transformers_the_normalised_waveform(capsys) -> None:
    """A preset that normalises the waveform (as `small` does): transformers' pipeline normalises in its
    feature extractor, so the two classifiers must agree on the same audio."""
    main([*TINY, "--rounds", "1", "--set", "normalize_waveform=true"])
    table = capsys.readouterr().out
    assert float(table.split("max |logit difference| ")[1].split()[0]) < 1e-4


def test_bad_arguments_are_clear_errors(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--seconds", "0.01"])
    assert "--seconds >= 0.025" in capsys.readouterr().err


@pytest.mark.parametrize("op", ["contrastive", "quantizer", "attention"])
def test_op_micro_benchmark_measures_both_variants(op: str) -> None:
    import argparse

    from w2v2.bench.worker import run_op

    for variant in ("fused", "reference"):
        res = run_op(argparse.Namespace(op=op, variant=variant, device="cpu", steps=1, warmup=0))
        assert res["op"] == op and res["s"] > 0 and math.isfinite(res["mem_mb"])
