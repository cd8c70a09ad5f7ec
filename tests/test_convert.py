"""Parity with Hugging Face transformers: random-initialised HF models, saved with save_pretrained,
loaded with load_hf (and the reverse with save_hf), compared number for number in fp32 eval."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from w2v2.convert import load_hf, save_hf  # noqa: E402
from w2v2.masking import compute_mask, sample_negatives  # noqa: E402
from w2v2.model import Wav2Vec2ForClassification, Wav2Vec2ForPreTraining  # noqa: E402

COMMON = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
              conv_dim=(16, 16, 16, 16, 16, 16, 16), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
              num_codevectors_per_group=24, num_codevector_groups=2, codevector_dim=32, proj_codevector_dim=24,
              num_negatives=8, classifier_proj_size=20, num_labels=6, mask_time_prob=0.3, mask_time_length=3)
STYLES = {
    "base": dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False),
    "large": dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, use_weighted_layer_sum=True),
}


def hf_config(style: str) -> transformers.Wav2Vec2Config:
    return transformers.Wav2Vec2Config(**COMMON, **STYLES[style])


def waves(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A right-padded batch and its (b, s) padding mask, True = pad."""
    g = torch.Generator().manual_seed(seed)
    s = max(lengths)
    wave = torch.zeros(len(lengths), s)
    padding_mask = torch.ones(len(lengths), s, dtype=torch.bool)
    for i, n in enumerate(lengths):
        wave[i, :n] = torch.randn(n, generator=g) * 0.3
        padding_mask[i, :n] = False
    return wave, padding_mask


def saved(model: torch.nn.Module, tmp_path, name: str):
    path = tmp_path / name
    model.save_pretrained(path)
    return path


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("style,lengths", [("base", [16000]), ("base", [4000, 2400]), ("large", [6000, 3000, 1200])])
def test_hidden_states_and_logits_match_transformers(tmp_path, style: str, lengths: list[int]) -> None:
    torch.manual_seed(0)
    hf = transformers.Wav2Vec2ForSequenceClassification(hf_config(style)).eval()
    ours = load_hf(saved(hf, tmp_path, style))
    assert isinstance(ours, Wav2Vec2ForClassification) and not ours.training
    wave, padding_mask = waves(lengths)
    padded = len(set(lengths)) > 1
    with torch.no_grad():
        ref = hf(wave, attention_mask=(~padding_mask).long() if padded else None, output_hidden_states=True)
        out = ours.backbone(wave, padding_mask if padded else None, output_hidden_states=True)
        logits = ours(wave, padding_mask if padded else None).logits
    assert len(out.hidden_states) == len(ref.hidden_states) == 3
    for i, (a, b) in enumerate(zip(out.hidden_states, ref.hidden_states, strict=True)):
        assert max_diff(a, b) < 1e-4, f"hidden state {i}"
    assert max_diff(logits, ref.logits) < 1e-4
    print(f"{style} {lengths}: max |dlogits| = {max_diff(logits, ref.logits):.2e}")


def _pretraining_pair(tmp_path, style: str) -> tuple[torch.nn.Module, Wav2Vec2ForPreTraining]:
    torch.manual_seed(1)
    hf = transformers.Wav2Vec2ForPreTraining(hf_config(style)).eval()
    return hf, load_hf(saved(hf, tmp_path, style))


def _hf_negatives(negatives: torch.Tensor) -> torch.Tensor:
    """Our per-utterance time indices (b, t, k) -> HF's flat (b*t) indices."""
    b, t, _ = negatives.shape
    return negatives + (torch.arange(b) * t)[:, None, None]


@pytest.mark.parametrize("style,lengths", [("base", [8000, 8000]), ("large", [8000, 5600])])
def test_pretraining_losses_match_transformers(tmp_path, style: str, lengths: list[int]) -> None:
    hf, ours = _pretraining_pair(tmp_path, style)
    wave, padding_mask = waves(lengths, seed=3)
    padded = len(set(lengths)) > 1
    g = torch.Generator().manual_seed(0)
    fpm = ours.backbone.frame_padding_mask(wave, padding_mask) if padded else None
    t = int(ours.backbone.frame_lengths(torch.tensor(wave.shape[1])))
    mask = compute_mask((len(lengths), t), 0.3, 3, 2, g, fpm)
    negatives = sample_negatives(mask, 8, g)
    with torch.no_grad():
        ref = hf(wave, attention_mask=(~padding_mask).long() if padded else None, mask_time_indices=mask,
                 sampled_negative_indices=_hf_negatives(negatives))
        out = ours(wave, padding_mask if padded else None, mask=mask, negative_indices=negatives)
    for name, a, b in [("contrastive", out.contrastive_loss, ref.contrastive_loss),
                       ("diversity", out.diversity_loss, ref.diversity_loss), ("total", out.loss, ref.loss)]:
        rel = abs(a.item() - b.item()) / max(abs(b.item()), 1e-8)
        assert rel < 1e-4, f"{name}: ours {a.item()} vs transformers {b.item()}"
    print(f"{style}: loss ours {out.loss.item():.6f} vs transformers {ref.loss.item():.6f}")


@pytest.mark.parametrize("style", ["base", "large"])
def test_save_hf_loads_in_transformers_with_same_outputs(tmp_path, style: str) -> None:
    hf, ours = _pretraining_pair(tmp_path, style)
    out_dir = save_hf(ours, tmp_path / "export")
    back, info = transformers.Wav2Vec2ForPreTraining.from_pretrained(out_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    for k, v in hf.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k
    clf = load_hf(saved(transformers.Wav2Vec2ForSequenceClassification(hf_config(style)), tmp_path, "clf"))
    clf_back, info = transformers.Wav2Vec2ForSequenceClassification.from_pretrained(
        save_hf(clf, tmp_path / "clf_export"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    wave, _ = waves([5000])
    with torch.no_grad():
        assert max_diff(clf(wave).logits, clf_back.eval()(wave).logits) < 1e-4


def test_legacy_weight_norm_names_and_bin_files(tmp_path) -> None:
    """Older checkpoints spell the positional conv's weight norm weight_g/weight_v and ship .bin files."""
    hf, ours = _pretraining_pair(tmp_path, "base")
    state = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                                 "weight_v"): v
             for k, v in hf.state_dict().items()}
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "config.json").write_text(hf.config.to_json_string())
    torch.save(state, legacy / "pytorch_model.bin")
    again = load_hf(legacy)
    for k, v in ours.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


def test_pretraining_checkpoint_loads_as_classifier_and_bad_paths_are_clear(tmp_path) -> None:
    _, ours = _pretraining_pair(tmp_path, "base")
    clf = load_hf(tmp_path / "base", kind="classifier")
    assert isinstance(clf, Wav2Vec2ForClassification)
    assert torch.equal(clf.backbone.mask_emb, ours.backbone.mask_emb)
    with pytest.raises(FileNotFoundError, match="no such checkpoint directory"):
        load_hf(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_hf(tmp_path / "empty")


@pytest.mark.parametrize("name,hf_kwargs", [
    ("base", {}),
    ("large", dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                   feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, codevector_dim=768,
                   proj_codevector_dim=768)),
])
def test_parameter_counts_equal_transformers(name: str, hf_kwargs: dict) -> None:
    from w2v2.config import apply_overrides, preset
    from w2v2.model import build_model

    with torch.device("meta"):
        hf_pre = transformers.Wav2Vec2ForPreTraining(transformers.Wav2Vec2Config(**hf_kwargs))
        hf_clf = transformers.Wav2Vec2ForSequenceClassification(transformers.Wav2Vec2Config(num_labels=6, **hf_kwargs))
        ours_pre = build_model(preset(name), "pretrain")
        ours_clf = build_model(apply_overrides(preset(name), ["head.num_labels=6"]), "classifier")
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(ours_pre) == count(hf_pre)
    assert count(ours_clf) == count(hf_clf)
    print(f"{name}: pretraining {count(ours_pre):,} / classifier {count(ours_clf):,} parameters")


def test_bare_backbone_checkpoint_loads(tmp_path) -> None:
    """facebook/wav2vec2-base-style Wav2Vec2Model directories (no task head) load as a backbone."""
    torch.manual_seed(2)
    hf = transformers.Wav2Vec2Model(hf_config("base")).eval()
    ours = load_hf(saved(hf, tmp_path, "bare"))
    wave, _ = waves([4000])
    with torch.no_grad():
        assert max_diff(ours(wave).c, hf(wave).last_hidden_state) < 1e-4
    clf = load_hf(tmp_path / "bare", kind="classifier")
    assert torch.equal(clf.backbone.mask_emb, ours.mask_emb)
