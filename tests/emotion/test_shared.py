"""Classifiers that share parts run as one (w2v2/emotion/shared.py): the same answers as each alone, the
shared parts computed once and held once."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from w2v2.checkpoint import CheckpointError, save_model
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


def save_family(root: Path, seed: int = 2) -> Path:
    """The family as a run's members: the three from one init say so in their metadata (`share_key`)."""
    for i, model in enumerate(family(seed)):
        init = {"init": "pretrained:small", "freeze_feature_encoder": True} if i < 3 else {}
        tuned = {"window_seconds": 1.0} | init
        save_model(model, root / f"member_{i + 1}" / "best", extra={"finetune": tuned})
    return root


def test_an_ensemble_runs_its_shared_parts_once_with_the_same_probabilities(tmp_path: Path, monkeypatch) -> None:
    import gc
    import weakref

    import w2v2.emotion.recognizer as recognizer

    run = save_family(tmp_path / "run")
    waves = [torch.randn(n, generator=torch.Generator().manual_seed(n)) * 0.1 for n in (8000, 16000, 40000)]
    alone = [window_probs(load_classifier(run / f"member_{i}")[0], waves, 1.0) for i in range(1, 5)]
    apart = [torch.stack(clip) for clip in zip(*alone, strict=True)]  # per clip (members, windows, 6)
    reference = EmotionRecognizer.from_pretrained(run, share=False).window_probs(waves, each=True)
    assert all(torch.equal(a, b) for a, b in zip(apart, reference, strict=True))
    loaded: list[weakref.ref] = []
    most = [0]

    def counted(*args, **kwargs):  # how many loaded models are alive whenever one more loads
        model = load_classifier(*args, **kwargs)
        gc.collect()
        loaded.append(weakref.ref(model[0]))
        most[0] = max(most[0], sum(r() is not None for r in loaded))
        return model

    monkeypatch.setattr(recognizer, "load_classifier", counted)
    for keep in (True, False):  # the API's kept members, and the CLI's loaded for the call
        loaded.clear()
        most[0] = 0
        shared = EmotionRecognizer(load_members([run], torch.device("cpu"), keep), "run", torch.device("cpu"))
        together = shared.window_probs(waves, each=True)
        assert [t.shape for t in together] == [t.shape for t in apart] and together[2].shape[:2] == (4, 4)  # 4 windows
        assert all(float((a - b).abs().max()) <= 1e-6 for a, b in zip(apart, together, strict=True))
        # loaded for the call: the three that may share together, the one with its own CNN alone after them
        assert most[0] == (4 if keep else 3)
    kept = [m.model for m in load_members([run], torch.device("cpu"), True) if isinstance(m, NetworkMember)]
    assert kept[1].backbone is kept[2].backbone  # type: ignore[union-attr]  # the API holds the probes' one backbone


def test_a_member_run_with_others_that_outputs_nan_is_named(tmp_path: Path) -> None:
    run = save_family(tmp_path / "run")
    model = load_classifier(run / "member_3")[0]
    with torch.no_grad():
        model.head.classifier.weight.fill_(3e38)  # finite weights (a checkpoint refuses NaN), overflowing logits
    save_model(model, run / "member_3" / "best", extra={"finetune": {"window_seconds": 1.0, "init": "pretrained:small",
                                                                      "freeze_feature_encoder": True}})
    with pytest.raises(CheckpointError, match=r"member_3/best: the model outputs NaN/inf") as caught:
        EmotionRecognizer.from_pretrained(run, keep_loaded=False).window_probs([torch.randn(16000) * 0.1])
    assert "member_1" not in str(caught.value) and "member_2" not in str(caught.value)
