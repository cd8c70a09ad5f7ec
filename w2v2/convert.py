"""Hugging Face `transformers` Wav2Vec2 checkpoints <-> w2v2 models. All foreign naming lives here.

load_hf(path) reads a local HF directory (config.json + model.safetensors or pytorch_model.bin;
optional preprocessor_config.json) of a Wav2Vec2ForPreTraining, Wav2Vec2ForSequenceClassification
or bare Wav2Vec2Model (also ForCTC: its lm_head is dropped) and returns the w2v2 model, eval mode.
Both weight-norm spellings of the positional conv (weight_g/weight_v and
parametrizations.weight.original0/1) are read. A hub id is fetched with huggingface_hub where the
user has it installed and network access. save_hf(model, dir) writes a directory that
`from_pretrained` loads with no missing or unexpected keys. Pickles are never trusted:
safetensors, or torch.load(weights_only=True).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from w2v2.checkpoint import tensor_bytes, write_dir
from w2v2.config import (
    SAMPLE_RATE,
    ContextConfig,
    FeatureEncoderConfig,
    HeadConfig,
    MaskingConfig,
    ModelConfig,
    ObjectiveConfig,
    QuantizerConfig,
)
from w2v2.model import build_model, model_kind, unwrap

# (our key pattern, HF key pattern) for one-to-one tensors; backbone keys without prefixes.
_BACKBONE_RULES = [
    (r"feature_encoder\.layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"feature_encoder\.layers\.(\d+)\.norm\.", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"feature_projection\.norm\.", r"feature_projection.layer_norm."),
    (r"feature_projection\.proj\.", r"feature_projection.projection."),
    (r"mask_emb$", r"masked_spec_embed"),
    (r"context\.pos_conv\.bias$", r"encoder.pos_conv_embed.conv.bias"),
    (r"context\.pos_conv\.weight_g$", r"encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    (r"context\.pos_conv\.weight_v$", r"encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    (r"context\.norm\.", r"encoder.layer_norm."),
    (r"context\.layers\.(\d+)\.attention\.out\.", r"encoder.layers.\1.attention.out_proj."),
    (r"context\.layers\.(\d+)\.norm_attn\.", r"encoder.layers.\1.layer_norm."),
    (r"context\.layers\.(\d+)\.ffn\.up\.", r"encoder.layers.\1.feed_forward.intermediate_dense."),
    (r"context\.layers\.(\d+)\.ffn\.down\.", r"encoder.layers.\1.feed_forward.output_dense."),
    (r"context\.layers\.(\d+)\.norm_ffn\.", r"encoder.layers.\1.final_layer_norm."),
]
_TOP_RULES = [
    (r"quantizer\.to_logits\.", r"quantizer.weight_proj."),
    (r"project_c\.", r"project_hid."),
    (r"project_q\.", r"project_q."),
    (r"head\.projector\.", r"projector."),
    (r"head\.classifier\.", r"classifier."),
    (r"head\.layer_weights$", r"layer_weights"),
]
_HF_ARCH = {"pretrain": "Wav2Vec2ForPreTraining", "classifier": "Wav2Vec2ForSequenceClassification",
            "backbone": "Wav2Vec2Model"}
_QKV = re.compile(r"context\.layers\.(\d+)\.attention\.qkv\.(weight|bias)$")


def config_from_hf(hf: dict[str, Any], do_normalize: bool = False) -> ModelConfig:
    """A ModelConfig from an HF config.json dict."""
    for key in ("hidden_act", "feat_extract_activation"):
        if hf.get(key, "gelu") != "gelu":
            raise ValueError(f"unsupported {key}={hf[key]!r}: w2v2 implements gelu only")
    num_labels = len(hf["id2label"]) if "id2label" in hf else hf.get("num_labels", 2)
    return ModelConfig(
        encoder=FeatureEncoderConfig(conv_dim=tuple(hf["conv_dim"]), conv_kernel=tuple(hf["conv_kernel"]),
                                     conv_stride=tuple(hf["conv_stride"]), norm=hf["feat_extract_norm"],
                                     conv_bias=bool(hf["conv_bias"])),
        context=ContextConfig(dim=hf["hidden_size"], layers=hf["num_hidden_layers"],
                              heads=hf["num_attention_heads"], ffn_dim=hf["intermediate_size"],
                              layer_norm_first=bool(hf["do_stable_layer_norm"]),
                              pos_conv_kernel=hf["num_conv_pos_embeddings"],
                              pos_conv_groups=hf["num_conv_pos_embedding_groups"],
                              dropout=hf["hidden_dropout"], attention_dropout=hf["attention_dropout"],
                              activation_dropout=hf["activation_dropout"], input_dropout=hf["feat_proj_dropout"],
                              layerdrop=hf["layerdrop"], layer_norm_eps=hf["layer_norm_eps"]),
        masking=MaskingConfig(mask_prob=hf.get("mask_time_prob", 0.05), mask_length=hf.get("mask_time_length", 10),
                              min_masks=hf.get("mask_time_min_masks", 2)),
        quantizer=QuantizerConfig(groups=hf.get("num_codevector_groups", 2),
                                  codewords=hf.get("num_codevectors_per_group", 320),
                                  codevector_dim=hf.get("codevector_dim", 256)),
        objective=ObjectiveConfig(proj_dim=hf.get("proj_codevector_dim", 256),
                                  num_negatives=hf.get("num_negatives", 100),
                                  logit_temp=hf.get("contrastive_logits_temperature", 0.1),
                                  diversity_weight=hf.get("diversity_loss_weight", 0.1),
                                  features_dropout=hf.get("feat_quantizer_dropout", 0.0)),
        head=HeadConfig(num_labels=num_labels, weighted_layer_sum=bool(hf.get("use_weighted_layer_sum", False)),
                        projector_dim=hf.get("classifier_proj_size", 256)),
        normalize_waveform=do_normalize,
    )


def config_to_hf(cfg: ModelConfig, kind: str, id2label: dict[int, str] | None = None) -> dict[str, Any]:
    """An HF config.json dict for `cfg`."""
    e, c, m, q, o, h = cfg.encoder, cfg.context, cfg.masking, cfg.quantizer, cfg.objective, cfg.head
    id2label = id2label or {i: f"LABEL_{i}" for i in range(h.num_labels)}
    return {
        "model_type": "wav2vec2", "architectures": [_HF_ARCH[kind]],
        "conv_dim": list(e.conv_dim), "conv_kernel": list(e.conv_kernel), "conv_stride": list(e.conv_stride),
        "num_feat_extract_layers": len(e.conv_dim), "feat_extract_norm": e.norm, "conv_bias": e.conv_bias,
        "feat_extract_activation": "gelu", "hidden_act": "gelu",
        "hidden_size": c.dim, "num_hidden_layers": c.layers, "num_attention_heads": c.heads,
        "intermediate_size": c.ffn_dim, "do_stable_layer_norm": c.layer_norm_first,
        "num_conv_pos_embeddings": c.pos_conv_kernel, "num_conv_pos_embedding_groups": c.pos_conv_groups,
        "hidden_dropout": c.dropout, "attention_dropout": c.attention_dropout,
        "activation_dropout": c.activation_dropout, "feat_proj_dropout": c.input_dropout,
        "layerdrop": c.layerdrop, "layer_norm_eps": c.layer_norm_eps,
        "apply_spec_augment": True, "mask_time_prob": m.mask_prob, "mask_time_length": m.mask_length,
        "mask_time_min_masks": m.min_masks,
        "num_codevector_groups": q.groups, "num_codevectors_per_group": q.codewords,
        "codevector_dim": q.codevector_dim, "proj_codevector_dim": o.proj_dim, "num_negatives": o.num_negatives,
        "contrastive_logits_temperature": o.logit_temp, "diversity_loss_weight": o.diversity_weight,
        "feat_quantizer_dropout": o.features_dropout,
        "use_weighted_layer_sum": h.weighted_layer_sum, "classifier_proj_size": h.projector_dim,
        "id2label": {str(k): v for k, v in id2label.items()}, "label2id": {v: k for k, v in id2label.items()},
    }


def hf_names(our_key: str, kind: str) -> list[str]:
    """HF key(s) holding our tensor `our_key` (three for a fused qkv projection)."""
    prefix = "" if kind == "backbone" else "wav2vec2."
    if kind == "backbone" or our_key.startswith("backbone."):
        inner = our_key.removeprefix("backbone.")
        if (match := _QKV.match(inner)):
            layer, what = match.groups()
            return [f"{prefix}encoder.layers.{layer}.attention.{n}_proj.{what}" for n in "qkv"]
        rules = _BACKBONE_RULES
    else:
        inner, prefix = our_key, ""
        if our_key == "quantizer.codebook":
            return ["quantizer.codevectors"]
        if our_key.startswith("head.pool."):
            raise ValueError("attentive statistics pooling has no transformers equivalent: use head.pooling=mean")
        rules = _TOP_RULES
    for ours, theirs in rules:
        if re.match(ours, inner):
            return [prefix + re.sub(ours, theirs, inner, count=1)]
    raise KeyError(f"no transformers name for {our_key}")


def state_to_hf(model: nn.Module) -> dict[str, torch.Tensor]:
    """Our model's weights under HF Wav2Vec2For* names."""
    kind = model_kind(model)
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        names = hf_names(key, kind)
        value = value.detach().cpu()
        if len(names) == 3:
            out.update({n: part.clone() for n, part in zip(names, value.chunk(3, dim=0), strict=True)})
        elif key == "quantizer.codebook":
            out[names[0]] = value.reshape(1, -1, value.shape[-1]).clone()
        else:
            out[names[0]] = value.clone()
    return out


def _legacy_weight_norm(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """weight_g/weight_v (older transformers, fairseq ports) -> parametrizations spelling."""
    out = {}
    for k, v in hf_state.items():
        k = re.sub(r"pos_conv_embed\.conv\.weight_g$", "pos_conv_embed.conv.parametrizations.weight.original0", k)
        k = re.sub(r"pos_conv_embed\.conv\.weight_v$", "pos_conv_embed.conv.parametrizations.weight.original1", k)
        out[k] = v
    return out


def hf_kind(hf_state: dict[str, torch.Tensor]) -> str:
    if any(k.startswith("quantizer.") for k in hf_state):
        return "pretrain"
    if "classifier.weight" in hf_state:
        return "classifier"
    return "backbone"


def load_state_from_hf(model: nn.Module, hf_state: dict[str, torch.Tensor], stored_kind: str) -> list[str]:
    """Fill `model` from an HF state dict; returns our keys not found there (left initialised)."""
    kind = model_kind(model)
    hf_state = _legacy_weight_norm(hf_state)
    if stored_kind == "backbone" and kind != "backbone":  # bare Wav2Vec2Model/ForCTC keys: no prefix
        hf_state = {f"wav2vec2.{k}": v for k, v in hf_state.items()}
    own = model.state_dict()
    new_state, missing = {}, []
    for key, value in own.items():
        names = hf_names(key, kind)
        if not all(n in hf_state for n in names):
            missing.append(key)
            new_state[key] = value
            continue
        tensor = torch.cat([hf_state[n] for n in names], dim=0) if len(names) == 3 else hf_state[names[0]]
        new_state[key] = tensor.reshape(value.shape).to(value.dtype)
    model.load_state_dict(new_state)
    return missing


def _local_dir(path_or_id: str | Path) -> Path:
    path = Path(path_or_id)
    if path.is_dir():
        return path
    if path.exists() or str(path_or_id).startswith((".", "/")) or str(path_or_id).count("/") != 1:
        raise FileNotFoundError(f"{path_or_id}: no such checkpoint directory")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise FileNotFoundError(f"{path_or_id}: not a local directory, and huggingface_hub is not installed "
                                "to fetch it as a hub id") from None
    try:
        return Path(snapshot_download(str(path_or_id), allow_patterns=["*.json", "*.safetensors", "*.bin"]))
    except Exception as e:
        raise FileNotFoundError(f"{path_or_id}: not a local directory, and fetching it from the hub failed "
                                f"({type(e).__name__}: {e})") from None


def _read_weights(directory: Path) -> dict[str, torch.Tensor]:
    if (directory / "model.safetensors").is_file():
        return load_file(str(directory / "model.safetensors"))
    if (directory / "pytorch_model.bin").is_file():
        return torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{directory}: no model.safetensors or pytorch_model.bin")


def read_hf_config(path_or_id: str | Path) -> ModelConfig:
    """The ModelConfig of a transformers Wav2Vec2 directory (config.json, preprocessor's do_normalize)."""
    directory = _local_dir(path_or_id)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory}: no config.json (not a transformers checkpoint directory)")
    hf_cfg = json.loads(config_path.read_text())
    if hf_cfg.get("model_type", "wav2vec2") != "wav2vec2":
        raise ValueError(f"{config_path}: model_type {hf_cfg.get('model_type')!r} is not wav2vec2")
    do_normalize = False
    if (directory / "preprocessor_config.json").is_file():
        do_normalize = bool(json.loads((directory / "preprocessor_config.json").read_text()).get("do_normalize"))
    return config_from_hf(hf_cfg, do_normalize)


def load_hf(path_or_id: str | Path, kind: str | None = None) -> nn.Module:
    """The w2v2 model equal to an HF Wav2Vec2 checkpoint, in eval mode.

    kind: None for the checkpoint's own ("pretrain", "classifier" or "backbone"); another kind keeps
    what the checkpoint has (e.g. "classifier" from a pretraining checkpoint: a fresh head).
    """
    directory = _local_dir(path_or_id)
    cfg = read_hf_config(directory)
    hf_state = _read_weights(directory)
    stored = hf_kind(hf_state)
    model = build_model(cfg, kind or stored)
    missing = load_state_from_hf(model, hf_state, stored)
    # Parts a checkpoint of another kind cannot have; mask_emb is absent where HF masking was off.
    allowed = {"pretrain": ("quantizer.", "project_"), "classifier": ("head.",), "backbone": ()}[model_kind(model)]
    unexpected = [k for k in missing
                  if not k.endswith("mask_emb") and (kind is None or kind == stored or not k.startswith(allowed))]
    if unexpected:
        raise ValueError(f"{directory}: checkpoint lacks {len(unexpected)} weights, e.g. {unexpected[:3]}")
    return model.eval()


def save_hf(model: nn.Module, directory: str | Path, id2label: dict[int, str] | None = None) -> Path:
    """Write `model` as a transformers checkpoint directory (config, safetensors, preprocessor config)."""
    model = unwrap(model)
    kind = model_kind(model)
    cfg = cast(ModelConfig, model.cfg)  # every w2v2 model has one (model_kind checked that it is one)
    if kind == "classifier" and (cfg.head.pooling != "mean" or cfg.head.dropout > 0 or cfg.head.standardize):
        raise ValueError("transformers' classifier has masked mean pooling, no head dropout and no input "
                         "standardisation: export needs head.pooling=mean, head.dropout=0, head.standardize=false")
    directory = Path(directory)
    state = state_to_hf(model)
    pre = {"feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1, "sampling_rate": SAMPLE_RATE,
           "padding_value": 0.0, "do_normalize": cfg.normalize_waveform, "padding_side": "right",
           "return_attention_mask": cfg.encoder.norm == "layer"}

    def write(tmp: Path) -> None:  # whole or not at all, a full disk named (write_dir)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config_to_hf(cfg, kind, id2label), indent=2))
        (tmp / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))

    write_dir(directory, write, tensor_bytes(state), "An earlier export there, if any, is intact")
    return directory
