"""Config presets, overrides and (de)serialisation."""

from pathlib import Path

import pytest

from w2v2.config import ModelConfig, apply_overrides, from_dict, preset, to_dict


def test_presets_differ_where_the_architectures_do() -> None:
    base, large = preset("base"), preset("large")
    assert base.context.dim == 768 and base.context.layers == 12 and not base.context.layer_norm_first
    assert base.encoder.norm == "group" and base.encoder.conv_bias is False
    assert large.context.dim == 1024 and large.context.layers == 24 and large.context.layer_norm_first
    assert large.encoder.norm == "layer" and large.encoder.conv_bias is True
    assert base.frame_rate_hz == 50.0


def test_overrides_are_type_checked() -> None:
    cfg = apply_overrides(preset("tiny"), ["context.layers=3", "masking.mask_prob=0.5", "encoder.norm=layer",
                                           "encoder.conv_dim=[16,16,16,16,16,16,16]"])
    assert cfg.context.layers == 3 and cfg.masking.mask_prob == 0.5 and cfg.encoder.norm == "layer"
    assert cfg.encoder.conv_dim == (16,) * 7
    with pytest.raises(ValueError, match="context.nlayers"):
        apply_overrides(cfg, ["context.nlayers=3"])
    with pytest.raises(ValueError, match="integer"):
        apply_overrides(cfg, ["context.layers=3.5"])
    with pytest.raises(ValueError, match="not one of"):
        apply_overrides(cfg, ["encoder.norm=batch"])
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides(cfg, ["context.layers"])


def test_round_trip_through_dict() -> None:
    cfg = apply_overrides(preset("tiny"), ["head.pooling=attentive_stats"])
    assert from_dict(ModelConfig, to_dict(cfg)) == cfg


@pytest.mark.parametrize(("override", "message"), [
    ("lr_head=-0.001", "lr_head=-0.001 is out of range: must be >= 0"),
    ("lr_head=.nan", "lr_head: expected a finite number, got nan"),
    ("lr_head=nan", "lr_head: expected a finite number, got nan"),
    ("batch_size=0", "batch_size=0 is out of range: must be >= 1"),
    ("batch_size=-4", "batch_size=-4 is out of range: must be >= 1"),
    ("crop_seconds=0", "crop_seconds=0.0 is out of range: must be >= 0.025"),
    ("epochs=0", "epochs=0 is out of range: must be >= 1"),
    ("val_fraction=0", r"val_fraction=0.0 is out of range: must be \(0, 1\)"),
    ("augmentation.speeds=[0.9,0]", r"augmentation.speeds=\(0.9, 0.0\) is out of range: must be > 0"),
    ("model.masking.mask_prob=1.5", r"model.masking.mask_prob=1.5 is out of range: must be \[0, 1\]"),
    ("seed=-1", r"seed=-1 is out of range: must be \[0, 2147483647\]"),
])
def test_finetune_settings_out_of_range_are_refused_naming_the_key(override: str, message: str) -> None:
    from finetune.config import resolve_run
    from finetune.model import build_classifier

    with pytest.raises(ValueError, match=message):
        build_classifier(resolve_run("configs/finetune/tiny.yaml", [override]))  # model.* is merged here


@pytest.mark.parametrize(("override", "message"), [
    ("optim.lr=-1", "optim.lr=-1.0 is out of range: must be >= 0"),
    ("optim.accumulate=0", "optim.accumulate=0 is out of range: must be >= 1"),
    ("data.max_seconds=0", "data.max_seconds=0.0 is out of range"),
    ("model.context.dropout=1", r"model.context.dropout=1.0 is out of range: must be \[0, 1\)"),
    ("model.quantizer.temp_min=.inf", "model.quantizer.temp_min: expected a finite number, got inf"),
    ("seed=-1", r"seed=-1 is out of range: must be \[0, 2147483647\]"),
])
def test_pretrain_settings_out_of_range_are_refused_naming_the_key(override: str, message: str) -> None:
    from pretrain.config import resolve_run

    with pytest.raises(ValueError, match=message):
        resolve_run("configs/pretrain/tiny.yaml", [override])


def test_shipped_configs_are_in_range_and_the_edges_allowed() -> None:
    from finetune.config import resolve_run
    from pretrain.config import resolve_run as resolve_pretrain

    finetune_configs, pretrain_configs = sorted(Path("configs/finetune").glob("*.yaml")), \
        sorted(Path("configs/pretrain").glob("*.yaml"))
    assert {p.stem for p in finetune_configs} >= {"tiny", "small", "small-cpu", "base"}
    assert {p.stem for p in pretrain_configs} >= {"tiny", "small", "small-continue", "base", "large"}
    for path in finetune_configs:
        resolve_run(str(path), [])
    for path in pretrain_configs:  # small-continue starts from a run folder that only its stage 1 makes
        resolve_pretrain(str(path), ["init=pretrained:small"] if "continue" in path.stem else [])
    cfg = resolve_run(None, ["lr_backbone=0", "crop_seconds=0.025", "max_steps=0", "warmup_fraction=1",
                                "lr_head=3e-4"])  # YAML 1.1 reads 3e-4 as a string; a float field takes it
    assert (cfg.lr_backbone, cfg.crop_seconds, cfg.warmup_fraction, cfg.lr_head) == (0.0, 0.025, 1.0, 3e-4)
    with pytest.raises(ValueError, match="lr_head: expected a number, got 'fast'"):
        resolve_run(None, ["lr_head=fast"])


def test_malformed_yaml_names_the_file_and_line_in_both_clis(tmp_path) -> None:
    from finetune.__main__ import main as finetune_main
    from pretrain.__main__ import main as pretrain_main

    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nlr_head: [0.1\nbatch_size: 4\n")
    with pytest.raises(SystemExit, match=r"bad.yaml, line 3, column \d+: not valid YAML"):
        finetune_main(["train", "--data", str(tmp_path), "--config", str(bad), "--run", str(tmp_path / "r")])
    bad.write_text("optim:\n  lr: 0.1\n lr: 2\n")
    with pytest.raises(SystemExit, match=r"bad.yaml, line 3, column \d+: not valid YAML"):
        pretrain_main(["--config", str(bad), f"run_dir={tmp_path / 'p'}"])
    assert not (tmp_path / "r").exists() and not (tmp_path / "p").exists()  # refused before any output


def test_a_shape_change_of_a_pretrained_init_names_the_fields_that_cannot_change(tmp_path) -> None:
    from finetune.__main__ import main as finetune_main
    from pretrain.config import resolve_run

    fixed = (r"init=pretrained:small: model.context.dim=128 \(its 256\) would change the shape of its weights; "
             r"with an init, these fields cannot change: model.encoder.conv_dim, .*model.context.dim, "
             r"model.context.layers, .* \(dropout, masking and the head can\); use init=scratch")
    with pytest.raises(SystemExit, match=fixed):
        finetune_main(["train", "--data", str(tmp_path), "--init", "pretrained:small", "model.context.dim=128",
                       "--run", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match=fixed):
        resolve_run(None, ["init=pretrained:small", "model.context.dim=128"])
    _, model = resolve_run(None, ["init=pretrained:small", "model.context.dropout=0.2"])  # not a shape: allowed
    assert model.context.dropout == 0.2 and model.context.dim == 256
    _, model = resolve_run(None, ["model.context.dim=128"])  # from scratch any architecture goes
    assert model.context.dim == 128
