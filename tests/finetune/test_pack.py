"""`finetune pack` and checkpoints stored against a base: only what differs is stored, the loaded model is
the same (exactly in fp32, within a stated tolerance in fp16), and --ckpt takes pretrained:NAME."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from finetune.__main__ import parse_args
from finetune.pack import pack
from w2v2.checkpoint import PRETRAINED_DIR, CheckpointError, load_model, read_meta, save_model
from w2v2.config import apply_overrides, preset
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.members import SHIPPED_CLASSIFIER, checkpoint_spec, members
from w2v2.emotion.recognizer import EmotionRecognizer
from w2v2.model import build_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
CFG = apply_overrides(preset("tiny"), ["head.num_labels=6"])


def fine_tuned(base: Path, seed: int, probe: bool) -> torch.nn.Module:
    """A classifier started from `base` whose head (and, unless a probe, its Transformer) changed."""
    torch.manual_seed(seed)
    model = build_model(CFG, "classifier")
    model.load_backbone_from(load_model(base))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("head.") or (not probe and name.startswith("backbone.context.")):
                p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory) -> tuple[Path, Path]:
    """(a pretraining checkpoint, an ensemble run of a fine-tune and a probe started from it)."""
    root = tmp_path_factory.mktemp("pack")
    torch.manual_seed(0)
    base = save_model(build_model(CFG, "pretrain"), root / "base")
    run = root / "run"
    for name, probe in (("member_1", False), ("member_1_probe", True)):
        extra = {"labels": list(EMOTIONS), "finetune": {"init": f"ckpt:{base}", "window_seconds": 2.0}}
        save_model(fine_tuned(base, 1, probe), run / name / "best", extra)
    shutil.copytree(PRETRAINED_DIR / "emotion", run / "member_1_descriptors" / "best")  # as the recipe writes one
    return base, run


def waves() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [torch.randn(n, generator=g) for n in (8000, 20000, 40000)]


def test_a_packed_ensemble_stores_only_what_changed_and_predicts_the_same(ensemble, tmp_path: Path) -> None:
    base, run = ensemble
    out = tmp_path / "packed"
    written = pack(run, out)
    assert [p.name for p in written] == ["member_1", "member_1_probe", "member_1_descriptors"]
    assert (out / "member_1_descriptors" / "travel.json").is_file()  # no network: copied as it is
    probe_keys = set(load_file(str(out / "member_1_probe" / "model.safetensors")))
    assert probe_keys and all(k.startswith("head.") for k in probe_keys)  # the probe's backbone is the base's
    tuned_keys = set(load_file(str(out / "member_1" / "model.safetensors")))
    assert not any(k.startswith("backbone.feature_encoder.") for k in tuned_keys)  # unchanged: not stored
    for name in ("member_1", "member_1_probe"):
        original, packed = load_model(run / name / "best").state_dict(), load_model(out / name).state_dict()
        assert original.keys() == packed.keys()
        assert all(torch.equal(original[k], packed[k]) for k in original)
    # members trained with different windows (the 2 s networks, the 8 s travelling model) all cut a clip into
    # the same 8 s windows (before, the 2.5 s clip's 2 and 1 windows could not be averaged)
    assert EmotionRecognizer.from_pretrained(run).window_seconds == 8.0
    ref, _ = EmotionRecognizer.from_pretrained(run).clip_probs(waves())
    got, _ = EmotionRecognizer.from_pretrained(out).clip_probs(waves())
    assert torch.equal(ref, got)


def test_half_precision_packing_stays_within_its_tolerance(ensemble, tmp_path: Path) -> None:
    _, run = ensemble
    out = tmp_path / "half"
    pack(run, out, half=True)
    assert all(v.dtype == torch.float16 for v in load_file(str(out / "member_1" / "model.safetensors")).values())
    ref, _ = EmotionRecognizer.from_pretrained(run).clip_probs(waves())
    got, _ = EmotionRecognizer.from_pretrained(out).clip_probs(waves())
    assert (ref - got).abs().max() < 2e-3
    assert torch.equal(ref.argmax(-1), got.argmax(-1))


def test_a_packed_checkpoint_without_its_base_names_it(ensemble, tmp_path: Path) -> None:
    base, run = ensemble
    moved = tmp_path / "base"
    shutil.copytree(base, moved)
    shutil.copytree(run, tmp_path / "run")
    rebased = tmp_path / "run" / "member_1" / "best"
    meta = (rebased / "w2v2.json").read_text().replace(str(base), str(moved))
    (rebased / "w2v2.json").write_text(meta)
    out = tmp_path / "packed"
    pack(tmp_path / "run" / "member_1", out)
    shutil.rmtree(moved)
    with pytest.raises(CheckpointError, match="its base 'ckpt:.*' cannot be loaded"):
        load_model(out)


def test_an_init_naming_a_run_folder_is_packed_against_the_checkpoint_it_resolved_to(ensemble, tmp_path) -> None:
    base, run = ensemble
    base_run = tmp_path / "base_run"
    shutil.copytree(base, base_run / "best")  # a fine-tuning run folder: its checkpoint is best/
    member = tmp_path / "run" / "best"
    extra = {"labels": read_meta(run / "member_1" / "best")["labels"], "finetune": {"init": f"ckpt:{base_run}"}}
    save_model(load_model(run / "member_1" / "best"), member, extra)
    pack(tmp_path / "run", tmp_path / "packed")
    assert read_meta(tmp_path / "packed")["base"] == f"ckpt:{base_run / 'best'}"
    original, packed = load_model(member).state_dict(), load_model(tmp_path / "packed").state_dict()
    assert all(torch.equal(original[k], packed[k]) for k in original)


def test_pack_refuses_an_existing_folder(ensemble, tmp_path: Path) -> None:
    with pytest.raises(FileExistsError, match="exists"):
        pack(ensemble[1], tmp_path)


def test_ckpt_takes_pretrained_names_and_defaults_to_the_shipped_model() -> None:
    assert checkpoint_spec("pretrained:small") == PRETRAINED_DIR / "small"
    assert checkpoint_spec("runs/x") == Path("runs/x")
    with pytest.raises(ValueError, match="no shipped model 'nope'.*small"):
        checkpoint_spec("pretrained:nope")
    for argv in (["predict", "a.wav"], ["evaluate", "--data", "d"], ["serve"], ["submit", "--data", "d", "--out", "o"]):
        assert parse_args(argv).ckpt == [PRETRAINED_DIR / SHIPPED_CLASSIFIER.split(":")[1]]  # the same default
    assert parse_args(["predict", "--ckpt", "r1", "--ckpt", "r2", "a.wav"]).ckpt == [Path("r1"), Path("r2")]


def test_the_ravdess_emotion_model_still_loads_by_name_and_fits_the_size_limit() -> None:
    from finetune.pack import folder_mb

    folder = checkpoint_spec("pretrained:emotion-ravdess")
    ckpts = members([folder])
    assert [c.name for c in ckpts] == [f"member_{k}{kind}" for k in (1, 2, 3) for kind in ("", "_probe", "_scratch")]
    assert folder_mb(folder) <= 25
    probs, each = EmotionRecognizer.from_pretrained(folder).clip_probs(waves())
    assert each.shape == (9, 3, 6) and torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-5)
    assert "CC BY-NC-SA 4.0" in (folder / "README.md").read_text()


def test_a_parents_kind_weights_set_its_members_votes_and_travel_with_the_pack(ensemble, tmp_path: Path) -> None:
    import json

    _, original = ensemble
    run = shutil.copytree(original, tmp_path / "run")
    equal = EmotionRecognizer.from_pretrained(run)
    assert torch.allclose(equal.weights, torch.full((3,), 1 / 3))  # no ensemble.json: one vote each
    (run / "ensemble.json").write_text(json.dumps({"kind_weights": {"finetune": 0.6, "probe": 0.0,
                                                                    "descriptors": 0.4}}))
    weighted = EmotionRecognizer.from_pretrained(run)
    assert [m.name for m in weighted.members] == [str(run / "member_1" / "best"),  # the probe has no vote: not run
                                                  str(run / "member_1_descriptors" / "best")]
    assert weighted.weights.tolist() == pytest.approx([0.6, 0.4])
    mean, each = weighted.clip_probs(waves())
    assert torch.allclose(mean, 0.6 * each[0] + 0.4 * each[1], atol=1e-6)
    assert not torch.allclose(mean, each.mean(0), atol=1e-3)
    written = pack(run, tmp_path / "packed")
    packed = written[0].parent
    assert [w.name for w in written] == ["member_1", "member_1_descriptors"]  # the probe, with no vote, left out
    assert not (packed / "member_1_probe").exists()
    assert EmotionRecognizer.from_pretrained(packed).weights.tolist() == pytest.approx([0.6, 0.4])
    assert torch.allclose(EmotionRecognizer.from_pretrained(packed).clip_probs(waves())[0], mean, atol=1e-5)
    # two runs given together: each run's members share its votes as its file says, each run as many as before
    both = EmotionRecognizer.from_pretrained([run, original])
    assert both.weights.tolist() == pytest.approx([0.3, 0.2, 1 / 6, 1 / 6, 1 / 6])
