"""Classifiers that share parts run as one (w2v2/emotion/shared.py): the same answers as each alone, the
shared parts computed once and held once."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from w2v2.checkpoint import save_model
from w2v2.config import apply_overrides, preset
from w2v2.emotion.members import load_classifier
from w2v2.emotion.recognizer import EmotionRecognizer, NetworkMember, load_members
from w2v2.emotion.shared import SharedClassifiers, cnn_groups, shared_parts
from w2v2.emotion.windows import window_probs
from w2v2.model import Wav2Vec2ForClassification, build_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

CFG = apply_overrides(preset("tiny"), ["head.num_labels=6", "encoder.norm=layer"])


def family(seed: int = 0) -> list[Wav2Vec2ForClassification]:
    """As the recipe makes them from one init: a fine-tune (the init's CNN, its own Transformer and head), two
    probes (the init's whole backbone, each its own head over every layer), and a model with its own CNN."""
    torch.manual_seed(seed)
    init = build_model(CFG, "classifier").eval()
    tuned = copy.deepcopy(init)
    for p in tuned.backbone.context.parameters():
        p.data += 0.05 * torch.randn_like(p)
    probes = []
    for _ in range(2):
        probe = build_model(apply_overrides(CFG, ["head.weighted_layer_sum=true"]), "classifier").eval()
        probe.backbone.load_state_dict(init.backbone.state_dict())
        probes.append(probe)
    other = copy.deepcopy(init)
    with torch.no_grad():
        other.backbone.feature_encoder.layers[0].conv.weight[0, 0, 0] += 1e-3  # one value: its own CNN
    return [tuned, *probes, other]


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    wave = torch.randn(3, 16000, generator=torch.Generator().manual_seed(1)) * 0.1
    mask = torch.zeros(wave.shape, dtype=torch.bool)
    mask[1, 12000:] = True  # padded rows: the frame mask must reach every member
    mask[2, 6000:] = True
    return wave, mask


def test_members_with_one_cnn_run_as_one_with_each_ones_answers() -> None:
    models = family()
    assert cnn_groups(models) == [[0, 1, 2], [3]]  # the CNN that differs in one value runs alone
    shared = SharedClassifiers(models[:3])
    assert len(shared.backbones) == 2 and shared.readers == [[0], [1, 2]]  # the probes' backbone once
    calls = {"cnn": 0, "context": 0}
    shared.cnn.feature_encoder.register_forward_hook(lambda *_: calls.__setitem__("cnn", calls["cnn"] + 1))
    for b in shared.backbones:
        b.context.register_forward_hook(lambda *_: calls.__setitem__("context", calls["context"] + 1))
    wave, mask = batch()
    with torch.no_grad():
        together = shared(wave, mask).logits
        assert calls == {"cnn": 1, "context": 2}
        alone = torch.stack([m(wave, mask).logits for m in models[:3]], dim=1)
    assert together.shape == (3, 3, 6)
    assert torch.allclose(together, alone, atol=1e-6)
    assert not torch.allclose(alone[:, 1], alone[:, 2], atol=1e-3)  # the probes' heads differ: a real test
    with pytest.raises(ValueError, match="the same CNN"):
        SharedClassifiers(models)


def test_shared_parts_are_held_once_and_answers_are_unchanged() -> None:
    models = family()
    wave, mask = batch()
    with torch.no_grad():
        before = [m(wave, mask).logits for m in models]
        kept = shared_parts(iter(models))
        after = [m(wave, mask).logits for m in kept]
    tuned, probe1, probe2, other = kept
    assert probe1.backbone is probe2.backbone  # the same backbone: one object
    assert tuned.backbone.feature_encoder is probe1.backbone.feature_encoder  # the same CNN: one object
    assert tuned.backbone.context is not probe1.backbone.context
    assert other.backbone.feature_encoder is not tuned.backbone.feature_encoder
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_an_ensemble_runs_its_shared_parts_once_with_the_same_probabilities(tmp_path: Path) -> None:
    for i, model in enumerate(family(seed=2)):
        save_model(model, tmp_path / "run" / f"member_{i + 1}" / "best", extra={"finetune": {"window_seconds": 1.0}})
    waves = [torch.randn(n, generator=torch.Generator().manual_seed(n)) * 0.1 for n in (8000, 16000, 40000)]
    alone = [window_probs(load_classifier(tmp_path / "run" / f"member_{i}")[0], waves, 1.0) for i in range(1, 5)]
    apart = [torch.stack(clip) for clip in zip(*alone, strict=True)]  # per clip (members, windows, 6)
    reference = EmotionRecognizer.from_pretrained(tmp_path / "run", share=False).window_probs(waves, each=True)
    assert all(torch.equal(a, b) for a, b in zip(apart, reference, strict=True))
    for keep in (True, False):  # the API's kept members, and the CLI's loaded for the call
        shared = EmotionRecognizer(load_members([tmp_path / "run"], torch.device("cpu"), keep), "run",
                                   torch.device("cpu"))
        together = shared.window_probs(waves, each=True)
        assert [t.shape for t in together] == [t.shape for t in apart] and together[2].shape[:2] == (4, 4)  # 4 windows
        assert all(float((a - b).abs().max()) <= 1e-6 for a, b in zip(apart, together, strict=True))
    kept = [m.model for m in load_members([tmp_path / "run"], torch.device("cpu"), True)
            if isinstance(m, NetworkMember)]
    assert kept[1].backbone is kept[2].backbone  # type: ignore[union-attr]  # the API holds the probes' one backbone
