"""Config presets, overrides and (de)serialisation."""

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
