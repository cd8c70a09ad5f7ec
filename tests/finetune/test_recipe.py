"""The default recipe (finetune/recipe.py): an ensemble of fine-tunes and probes of pretrained:small in one
command, its plan and estimate, folds of probes, the recipes by init, and the device."""

from __future__ import annotations

import html
import itertools
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from finetune.__main__ import main
from finetune.config import resolve_run
from finetune.outputs import PROB_COLUMNS
from w2v2.checkpoint import load_model
from w2v2.data.datasets import Item

FAST = ["epochs=1", "batch_size=4", "crop_seconds=1.5", "probe_epochs=5", "threads=1",
        "scratch.epochs=1", "scratch.batch_size=4", "scratch.crop_seconds=1.5"]

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # tests/conftest.py


@pytest.fixture(scope="module")
def corpus(synthetic_corpus) -> Path:
    return synthetic_corpus(clips=36, speakers=6, seed=4)


@pytest.fixture(scope="module")
def default_run(corpus: Path, tmp_path_factory) -> tuple[Path, str]:
    """The first command a user types, with only the size and the epochs made small."""
    run = tmp_path_factory.mktemp("default") / "run"
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["train", "--data", str(corpus), "--run", str(run), "--members", "2", *FAST])
    return run, out.getvalue()


NAMES = ["member_1", "member_1_descriptors", "member_1_probe", "member_1_scratch",
         "member_2", "member_2_descriptors", "member_2_probe", "member_2_scratch"]  # sorted


def test_the_default_is_an_ensemble_of_fine_tunes_probes_tiny_models_and_descriptors(default_run,
                                                                                     corpus: Path) -> None:
    from w2v2.emotion.travel import load_travel

    run, out = default_run
    labelled = len(pd.read_csv(corpus / "train.csv"))
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == NAMES
    # the member table: a descriptors head trains a fixed length, so it has no chosen epoch to show
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip().startswith("member_")}
    assert rows["member_1_descriptors"][1:4] == ["descriptors", "0", "-"] and rows["member_1"][3] == "1"
    metrics = json.loads((run / "metrics.json").read_text())
    assert [(m["name"], m["kind"], m["seed"]) for m in metrics["members"]] == [
        ("member_1", "finetune", 0), ("member_1_probe", "probe", 0), ("member_1_scratch", "scratch", 0),
        ("member_1_descriptors", "descriptors", 0), ("member_2", "finetune", 1), ("member_2_probe", "probe", 1),
        ("member_2_scratch", "scratch", 1), ("member_2_descriptors", "descriptors", 1)]
    names = [n for n in NAMES if not n.endswith("_descriptors")]
    for seed, name in enumerate(("member_1_descriptors", "member_2_descriptors")):
        model, info = load_travel(run / name / "best")  # linear heads over descriptors, each seed its own heads
        assert info["clips"] == labelled - len(pd.read_csv(run / name / "val_probs.csv"))  # its seed's training clips
        assert model.cfg.seed == seed * model.cfg.heads
    for name in names:
        meta = json.loads((run / name / "best" / "w2v2.json").read_text())
        assert meta["finetune"]["init"] == ("scratch" if name.endswith("_scratch") else "pretrained:small")
        assert bool(meta.get("probe")) == name.endswith("_probe")
    tiny = json.loads((run / "member_1_scratch" / "best" / "w2v2.json").read_text())
    assert tiny["finetune"]["epochs"] == 1 and tiny["finetune"]["preset"] == "tiny"  # scratch.epochs=1 reached it
    # each seed validated on its own speakers; the kinds of one seed share them
    val = {n: set(pd.read_csv(run / n / "val_probs.csv").id) for n in NAMES}
    assert val["member_1"] == val["member_1_probe"] == val["member_1_scratch"] == val["member_1_descriptors"]
    assert val["member_2"] == val["member_2_probe"] == val["member_2_scratch"] == val["member_2_descriptors"]
    assert val["member_1"] != val["member_2"]


def test_a_descriptors_member_answers_its_test_clips_as_predict_and_submit_do(default_run, corpus: Path) -> None:
    from w2v2.data.datasets import load_dataset
    from w2v2.emotion.recognizer import EmotionRecognizer, NetworkMember, TravelMember
    from w2v2.emotion.windows import AudioCache, cached_waves

    run, printed = default_run
    weights = json.loads((run / "ensemble.json").read_text())["kind_weights"]
    words = (("finetune", "fine-tune"), ("probe", "linear probe"), ("scratch", "tiny model"),
             ("descriptors", "descriptors head"))
    said = ", ".join(f"{w} {weights[k]:.1f}" for k, w in words)
    assert f"kinds weighed by their validation clips: {said}" in printed
    clips = json.loads((run / "ensemble.json").read_text())["clips"]
    assert clips == len(pd.read_csv(run / "val_probs.csv")) and clips < 100
    assert f"only {clips} validation clips chose these weights" in printed  # a small corpus is warned about
    whole = EmotionRecognizer.from_pretrained(run)  # the run folder stands for its members with a vote
    kinds = ["finetune", "probe", "scratch", "descriptors"] * 2  # member_folders' order
    assert [type(m) for m in whole.members] == [TravelMember if k == "descriptors" else NetworkMember
                                                for k in kinds if weights[k] > 0]
    test = load_dataset(corpus).test
    waves = cached_waves(AudioCache(test), len(test))
    member = EmotionRecognizer.from_pretrained(run / "member_1_descriptors")
    probs, _ = member.clip_probs(waves, normalise="set")  # the test folder as one recording set, as submit does
    saved = pd.read_csv(run / "member_1_descriptors" / "test_probs.csv")
    assert list(saved.id) == [t.id for t in test]
    assert np.allclose(saved[PROB_COLUMNS].to_numpy(), probs.numpy(), atol=1e-5)
    alone, _ = member.clip_probs(waves[:1])  # one clip alone: the lone-clip heads, another answer
    assert not np.allclose(alone.numpy(), probs[:1].numpy(), atol=1e-3)


def test_the_default_writes_one_submission_averaging_every_member_by_its_kinds_weight(default_run,
                                                                                     corpus: Path) -> None:
    run, _ = default_run
    probs = pd.read_csv(run / "test_probs.csv")
    each = np.stack([pd.read_csv(run / n / "test_probs.csv")[PROB_COLUMNS].to_numpy() for n in NAMES])
    weights = json.loads((run / "ensemble.json").read_text())["kind_weights"]
    assert set(weights) == {"finetune", "probe", "scratch", "descriptors"} and sum(weights.values()) == \
        pytest.approx(1)
    kind = [n.split("_")[2] if n.count("_") > 1 else "finetune" for n in NAMES]
    w = np.array([weights[k] / kind.count(k) for k in kind])  # a kind's weight shared by its 2 members
    assert np.allclose(probs[PROB_COLUMNS].to_numpy(), np.einsum("m,mnc->nc", w / w.sum(), each), atol=2e-6)
    assert not np.allclose(each[0], each[1], atol=1e-3)  # the members differ
    sub = pd.read_csv(run / "submission.csv")
    assert list(sub.id) == list(pd.read_csv(corpus / "sample_submission.csv").id)
    assert (sub.label.to_numpy() == probs[PROB_COLUMNS].to_numpy().argmax(1)).all()


def test_the_parent_scores_each_seeds_ensemble_on_that_seeds_validation_clips(default_run, corpus: Path) -> None:
    run, printed = default_run
    metrics = json.loads((run / "metrics.json").read_text())
    labelled = len(pd.read_csv(corpus / "train.csv"))
    shares = [f"{s:.0%}" for s in sorted(len(pd.read_csv(run / m / "val_probs.csv")) / labelled
                                         for m in ("member_1", "member_2"))]
    said = shares[0] if shares[0] == shares[1] else "-".join(shares)  # each seed's share of the clips, as it was
    assert metrics["recipe"] == (f"2 seed(s), each validating on its own whole speakers ({said} of the clips), "
                                 "none in training")
    parent = pd.read_csv(run / "val_probs.csv")
    ensemble = json.loads((run / "ensemble.json").read_text())
    kinds = ("finetune", "probe", "scratch", "descriptors")
    frames = {(first, k): pd.read_csv(run / f"{first}{'' if k == 'finetune' else '_' + k}" / "val_probs.csv")
              for first in ("member_1", "member_2") for k in kinds}
    for seed, (first, other) in enumerate((("member_1", "member_2"), ("member_2", "member_1"))):
        mine = parent[parent.seed == seed].reset_index(drop=True)
        each = [frames[first, k] for k in kinds]
        assert list(mine.id) == list(each[0].id) and list(mine.label) == list(each[0].label)
        # the seed's clips are scored with the kinds' weights fitted on the other seed's clips alone
        own = ensemble["validation_weights"][first]
        assert own == pytest.approx(best_weights({k: frames[other, k] for k in kinds}))
        mean = sum(own[k] * df[PROB_COLUMNS].to_numpy() for k, df in zip(kinds, each, strict=True))
        assert np.allclose(mine[PROB_COLUMNS].to_numpy(), mean, atol=2e-6)
        seed_uar = metrics["validation_seeds"][str(seed)]["uar"]
        assert seed_uar == pytest.approx(recall_mean(mine), abs=1e-9)
        assert f"ensemble, seed {seed}" in printed and f"{seed_uar:.3f}" in printed
    assert metrics["validation"]["n"] == len(parent)
    assert metrics["validation"]["uar"] == pytest.approx(recall_mean(parent), abs=1e-9)


def best_weights(frames: dict[str, pd.DataFrame]) -> dict[str, float]:
    """The kind weights (0.1 steps, summing to 1) whose mixture gives the clips the most likelihood, by brute
    force over every grid point (a second computation, not the library's)."""
    kinds, y = list(frames), next(iter(frames.values()))["label"].to_numpy()
    best, chosen = -np.inf, {}
    for w in itertools.product(range(11), repeat=len(kinds)):
        if sum(w) != 10:
            continue
        p = sum(wk / 10 * frames[k][PROB_COLUMNS].to_numpy() for wk, k in zip(w, kinds, strict=True))
        ll = np.log(np.clip(p[np.arange(len(y)), y], 1e-8, None)).sum()
        if ll > best + 1e-9:
            best, chosen = ll, {k: wk / 10 for wk, k in zip(w, kinds, strict=True)}
    return chosen


def recall_mean(df: pd.DataFrame) -> float:
    """UAR over the classes present, from a probability frame (a second computation, not the library's)."""
    pred = df[PROB_COLUMNS].to_numpy().argmax(1)
    return float(np.mean([(pred[df.label == c] == c).mean() for c in sorted(df.label.unique())]))


def test_the_plan_and_estimate_are_printed_before_training(default_run) -> None:
    _, printed = default_run
    plan, estimate = printed.index("plan: 2 fine-tune(s) of pretrained:small + 2 linear probe(s) + 2 tiny model(s) "
                                   "from scratch + 2 descriptors head(s)"), printed.index("estimate: ")
    assert plan < printed.index("tiny from scratch: 1 epochs") < estimate
    assert estimate < printed.index("member 1/8: member_1 (finetune, seed 0)")
    minutes = float(printed[estimate:].split()[1])
    assert 0 < minutes < 30
    # where the time goes: one member of each kind; two seeds of each make up the whole estimate
    line = printed[printed.index("per member: "):].splitlines()[0].removeprefix("per member: ")
    each = {part.rsplit(" ", 2)[0]: float(part.rsplit(" ", 2)[1]) for part in line.split(", ")}
    assert set(each) == {"fine-tune", "linear probe", "tiny model", "descriptors head"} and min(each.values()) > 0
    assert max(each.values()) <= minutes + 0.05 and minutes <= 2 * sum(each.values()) + 0.05


def test_probe_folds_are_an_ensemble_with_out_of_fold_metrics(corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    main(["train", "--data", str(corpus), "--run", str(run), "--probe", "--folds", "2", *FAST])
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["fold_1_probe", "fold_2_probe"]
    oof = pd.read_csv(run / "oof_probs.csv")
    train = pd.read_csv(corpus / "train.csv")
    assert list(oof.id) == list(train.id) and sorted(oof.fold.unique()) == [1, 2]
    for k in (1, 2):
        val = pd.read_csv(run / f"fold_{k}_probe" / "val_probs.csv")
        rows = oof.set_index("id").loc[val.id]
        assert (rows.fold == k).all() and np.allclose(rows[PROB_COLUMNS].to_numpy(), val[PROB_COLUMNS].to_numpy())
    assert json.loads((run / "metrics.json").read_text())["oof"]["n"] == len(train)


def test_recipes_follow_the_init_unless_a_config_file_is_given() -> None:
    default = resolve_run(None, [])
    assert (default.init, default.members, default.kinds, default.freeze_feature_encoder) == (
        "pretrained:small", 3, ("finetune", "probe", "scratch", "descriptors"), True)
    scratch = resolve_run(None, ["init=scratch"])
    assert (scratch.preset, scratch.members, scratch.kinds, scratch.freeze_feature_encoder, scratch.epochs) == (
        "tiny", 1, ("finetune",), False, 80)
    assert resolve_run(None, ["init=scratch", "epochs=3"]).epochs == 3  # overrides win over the recipe
    assert resolve_run(None, ["init=hf:some/dir"]).lr_backbone == 3e-5
    assert resolve_run("configs/finetune/small-cpu.yaml", []).members == 1
    assert resolve_run("configs/finetune/tiny.yaml", []) == scratch
    # the scratch members keep their recipe, the run's device settings and scratch.* on top
    from finetune.recipe import member_config

    run = resolve_run(None, ["epochs=7", "threads=1", "scratch.epochs=4"])
    tiny = member_config(run, "scratch", 2)
    assert (tiny.preset, tiny.epochs, tiny.lr_backbone, tiny.threads, tiny.seed, tiny.kinds) == (
        "tiny", 4, 1e-3, 1, 2, ("finetune",))
    assert member_config(run, "finetune", 2).epochs == 7
    with pytest.raises(ValueError, match="scratch.*unknown config key.*epoch"):
        resolve_run(None, ["scratch.epoch=4"])  # a typo fails before any training


def test_a_typo_in_a_model_override_fails_before_an_earlier_run_is_removed(corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    with pytest.raises(SystemExit, match="model.contxt"):
        main(["train", "--data", str(corpus), "--run", str(run), "--overwrite", "model.contxt.dropout=0.2"])
    assert (run / "metrics.json").read_text() == "{}"


def test_device_cpu_equals_auto_on_a_machine_without_gpu(corpus: Path, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("auto is the GPU here")
    weights = []
    for device in ("cpu", "auto"):
        main(["train", "--data", str(corpus), "--run", str(tmp_path / device), "--init", "scratch", *FAST,
              f"device={device}"])
        weights.append(load_model(tmp_path / device / "best").state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    with pytest.raises(SystemExit, match="no CUDA GPU is usable here"):
        main(["train", "--data", str(corpus), "--run", str(tmp_path / "gpu"), "device=cuda", *FAST])
    with pytest.raises(SystemExit, match="device=tpu: expected auto, cpu, cuda or cuda:N"):
        main(["predict", "--ckpt", str(tmp_path / "cpu"), str(corpus / "test"), "--device", "tpu"])


def test_a_model_on_the_resolved_device_predicts_what_it_does_on_the_cpu(default_run, corpus: Path) -> None:
    from w2v2.data.datasets import load_dataset
    from w2v2.emotion.windows import AudioCache, cached_waves, predict_probs
    from w2v2.training import resolve_device

    run, _ = default_run
    model = load_model(run / "member_1" / "best").eval()
    test = load_dataset(corpus).test[:6]
    waves = cached_waves(AudioCache(test), len(test))
    on_cpu = predict_probs(model, waves, 8.0)
    moved = predict_probs(model.to(resolve_device("auto")), waves, 8.0)
    assert moved.device.type == "cpu" and torch.allclose(on_cpu, moved, atol=1e-4)
    saved = pd.read_csv(run / "member_1" / "test_probs.csv").set_index("id").loc[[t.id for t in test]]
    assert np.allclose(saved[PROB_COLUMNS].to_numpy(), on_cpu.numpy(), atol=1e-5)


def test_a_budget_drops_seeds_first_then_epochs(corpus: Path, capsys) -> None:
    from dataclasses import replace

    from finetune.recipe import fit_budget, plan_members
    from w2v2.data.datasets import load_dataset

    cfg = resolve_run(None, ["members=3", "epochs=10", "kinds=[finetune,probe]"])
    members, _ = plan_members(load_dataset(corpus), cfg, None)
    cost = lambda ms: 60 * sum(m.cfg.epochs if m.kind == "finetune" else 1 for m in ms)  # noqa: E731
    assert fit_budget(members, replace(cfg, budget_minutes=40), cost) == members  # 33 min
    assert fit_budget(members, replace(cfg, budget_minutes=25), cost) == members[:4]  # 2 seeds: 22 min
    one = fit_budget(members, replace(cfg, budget_minutes=8), cost)  # 1 seed is 11 min: 7 epochs are 8
    assert [m.name for m in one] == ["member_1", "member_1_probe"] and one[0].cfg.epochs == 7
    assert fit_budget(members, replace(cfg, budget_minutes=1), cost)[0].cfg.epochs == 3
    assert "even the smallest plan" in capsys.readouterr().out
    three, _ = plan_members(load_dataset(corpus), resolve_run(None, ["members=3"]), None)  # the default kinds
    assert [m.name for m in fit_budget(three, replace(cfg, budget_minutes=50), cost)] == [  # 21 min a seed
        "member_1", "member_1_probe", "member_1_scratch", "member_1_descriptors",
        "member_2", "member_2_probe", "member_2_scratch", "member_2_descriptors"]


def test_the_gpu_check_says_when_there_is_no_gpu(tmp_path: Path, capsys) -> None:
    from finetune.gpu_check import main as gpu_check

    if torch.cuda.is_available():
        pytest.skip("there is a GPU here: make gpu-check runs the real check")
    assert gpu_check(tmp_path) == 2
    assert "no CUDA GPU here" in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_a_crop_longer_than_every_clip_is_the_longest_clip_and_the_plan_says_so(capsys) -> None:
    from finetune.config import FinetuneConfig
    from finetune.recipe import Member, fit_crops

    cfg = FinetuneConfig(crop_seconds=100000.0)
    members = [Member("member_1", "finetune", cfg, [], []), Member("member_1_probe", "probe",
                                                                    FinetuneConfig(crop_seconds=3.0), [], [])]
    fitted = fit_crops(members, longest=4.2)
    assert [m.cfg.crop_seconds for m in fitted] == [5.0, 3.0]  # a 3 s crop of clips up to 4.2 s stays
    assert "crop_seconds=100000 is longer than the longest training clip (4.2 s)" in capsys.readouterr().out


def test_a_batch_that_cannot_fit_in_memory_is_refused_before_anything_is_allocated(monkeypatch) -> None:
    import finetune.recipe as recipe
    from finetune.config import FinetuneConfig

    items = [Item(id=str(i), path=Path(f"{i}.wav"), label=i % 6) for i in range(40)]
    big = recipe.Member("member_1", "finetune", FinetuneConfig(batch_size=100000, crop_seconds=3.0), items, [])
    fitted = recipe.fit_crops([big], longest=4.0)[0]
    assert fitted.cfg.batch_size == 40  # no batch holds more clips than the training set has
    monkeypatch.setattr(recipe, "available_bytes", lambda: 2**26)  # a machine with 64 MB free
    with pytest.raises(ValueError, match=r"batch_size=40 x crop_seconds=3 needs about .* GB for one batch; this "
                                         r"machine has 0.1 GB free: lower batch_size or crop_seconds"):
        recipe.fit_crops([big], longest=4.0)


def test_the_report_of_the_default_run_shows_each_seeds_ensemble(default_run, tmp_path: Path) -> None:
    from finetune.report import build_report, render
    from finetune.report_plots import curves_figure

    run, _ = default_run
    metrics = json.loads((run / "metrics.json").read_text())
    report = build_report(run)
    assert report.metrics["validation"] == metrics["validation"]
    page = render(report)
    for seed in ("0", "1"):
        cells = re.search(rf"<tr><td>seed {seed}</td>(.*?)</tr>", page).group(1)
        assert f"<td>{metrics['validation_seeds'][seed]['uar']:.3f}</td>" in cells
    assert "validation: 2 seed(s), each validating on its own whole speakers" in page
    said = (("finetune", "fine-tunes"), ("probe", "probes"), ("scratch", "tiny models"),
            ("descriptors", "descriptors heads"))
    weights = ", ".join(f"{w} {metrics['kind_weights'][k]:.1f}" for k, w in said)
    assert f"each kind weighted as it predicted the validation clips: {weights}" in page
    if "side by side: 2 members at a time" in default_run[1]:
        assert "2 members at a time, 1 thread(s) each)" in page  # the report says how the members ran
    assert "<h3>validation: ECE" in page  # calibration of the ensemble's validation estimate
    val = pd.read_csv(run / "val_probs.csv")
    assert any(f"<td>{html.escape(p)}</td>" in page for p in val.path)  # the wrong clips are named by path
    # one column of axes per kind: a probe's epochs are not a fine-tune's
    histories = {m: [{"epoch": 1, "train_loss": 1.0, "val_uar": 0.2}] for m in ("a", "b", "c")}
    fig = curves_figure(histories, dict.fromkeys(histories, 1), {"a": "finetune", "b": "probe", "c": "finetune"})
    assert len(fig.axes) == 4 and fig.axes[0].get_title() == "finetune (2)"
    # a parent trained before it scored its seeds: the report computes the same estimate from the members
    old = shutil.copytree(run, tmp_path / "old")
    (old / "val_probs.csv").unlink()
    (old / "metrics.json").write_text(json.dumps({k: v for k, v in metrics.items()
                                                  if k not in ("validation", "validation_seeds")}))
    assert build_report(old).metrics["validation"] == metrics["validation"]


def test_validation_words_say_how_the_clips_were_split() -> None:
    from finetune.folds import validation_words

    with_speakers = [Item(str(i), Path(f"{i}.wav"), i % 6, speaker=f"s{i % 4}") for i in range(24)]
    assert validation_words(with_speakers, 0.15, None) == (
        "its own whole speakers (about 15% of the clips), none in training")
    # four speakers: one whole speaker is a quarter of the clips, not the 15% asked for; the plan says so
    assert validation_words(with_speakers, 0.15, None, shares=[0.25, 0.25, 0.25]) == (
        "its own whole speakers (25% of the clips), none in training")
    assert validation_words(with_speakers, 0.15, None, shares=[0.25, 0.5]) == (
        "its own whole speakers (25%-50% of the clips), none in training")
    anonymous = [Item(str(i), Path(f"{i}.wav"), i % 6) for i in range(24)]
    assert validation_words(anonymous, 0.2, None, own=False) == (
        "stratified random split (no speaker information): 20% of every class's clips, whose speakers may also "
        "be in training")
    assert validation_words(with_speakers, 0.15, ["s1", "s2"]) == "the --val-speakers s1, s2, none in training"


def test_members_side_by_side_give_the_numbers_they_give_one_after_another(default_run, corpus: Path,
                                                                           tmp_path: Path, capsys) -> None:
    run, printed = default_run
    if "side by side: 2 members at a time, 1 thread(s) each" not in printed:
        pytest.skip("one core: the default run trained its members one after another")
    assert "[member_1_probe] probe: features of" in printed  # a worker's output, through the parent
    alone = tmp_path / "alone"
    main(["train", "--data", str(corpus), "--run", str(alone), "--members", "2", *FAST, "workers=1"])
    assert "side by side" not in capsys.readouterr().out
    for name in ("test_probs.csv", "member_2_scratch/val_probs.csv", "member_1_probe/test_probs.csv"):
        a, b = pd.read_csv(run / name), pd.read_csv(alone / name)
        assert np.array_equal(a[PROB_COLUMNS].to_numpy(), b[PROB_COLUMNS].to_numpy()), name


def test_workers_follow_cores_threads_and_memory(monkeypatch) -> None:
    from finetune import parallel

    monkeypatch.setattr(parallel, "cpu_count", lambda: 8)
    monkeypatch.setattr(parallel, "available_bytes", lambda: 100 * 2**30)
    assert parallel.plan_workers(0, 0, 9, "cpu") == (8, 1)  # one member per core, one thread each
    assert parallel.plan_workers(0, 2, 9, "cpu") == (4, 2)  # threads=2: half as many members at once
    assert parallel.plan_workers(0, 0, 3, "cpu") == (3, 2)  # fewer members than cores: threads to spare
    assert parallel.plan_workers(0, 0, 1, "cpu") == (1, 0)  # a single member trains in this process
    assert parallel.plan_workers(2, 0, 9, "cpu") == (2, 4)  # workers=2 asked for
    monkeypatch.setattr(parallel, "available_bytes", lambda: 7 * 2**30)
    assert parallel.plan_workers(0, 0, 9, "cpu") == (2, 4)  # memory for two at 3 GB each


def test_the_cost_table_is_the_cost_runs_output() -> None:
    """docs/recipe.md's cost table gives experiments/results/cost.txt's figures, and the README its savings."""
    root = Path(__file__).resolve().parents[2]
    rows = [r.strip("|").split("|") for r in (root / "experiments/results/cost.txt").read_text().splitlines()
            if r.startswith("| ") and not r.startswith(("| kind", "| the recipe: "))]
    docs = (root / "docs" / "recipe.md").read_text()
    table = docs[docs.index("| | CPU-min per hour of training audio |"):].split("\n\n")[0].splitlines()[2:]
    assert len(rows) == len(table) == 5
    for run, shown in zip(rows, table, strict=True):
        cells = [c.strip().strip("*") for c in shown.strip("|").split("|")]
        assert cells[1:3] == [run[3].strip(), run[4].strip()]
        assert cells[3] == f"{float(run[5]) / float(run[2]):.0%}"  # the estimate, as a share of the actual
    before, now = (float(rows[i][j]) for i, j in ((3, 2), (4, 2))), (float(rows[i][1]) for i in (3, 4))
    wall, cpu = 1 - (lambda a, b: b / a)(*before), 1 - (lambda a, b: b / a)(*now)
    readme = (root / "README.md").read_text()
    assert f"{wall:.0%} less wall time and {cpu:.0%} less CPU time" in " ".join(readme.split())


def test_a_dry_run_prints_the_plan_and_trains_nothing(corpus: Path, tmp_path: Path, capsys) -> None:
    main(["train", "--data", str(corpus), "--run", str(tmp_path / "run"), "--dry-run", "--budget-minutes", "0.01",
          *FAST])
    out = capsys.readouterr().out
    assert "--budget-minutes 0.01: 1 seed(s)/fold(s), 3 epochs" in out or "even the smallest plan" in out
    assert out.index("plan: ") < out.index("estimate: ") < out.index("--dry-run: nothing trained")
    assert not (tmp_path / "run").exists()


def test_a_budget_that_drops_seeds_says_how_many_are_left() -> None:
    from finetune.recipe import Member, seeds_said

    how = "3 seed(s), each validating on its own whole speakers (about 15% of the clips), none in training"
    cfg = resolve_run(None, [])
    one = [Member("member_1", "finetune", cfg, [], []), Member("member_1_probe", "probe", cfg, [], [])]
    assert seeds_said(how, one).startswith("1 seed(s), each validating")
    assert seeds_said("2 folds (stratified)", [Member("fold_1", "finetune", cfg, [], [], 0)]) == "2 folds (stratified)"


def test_a_short_estimate_is_never_printed_as_zero_minutes() -> None:
    from finetune.recipe import minutes_text
    assert minutes_text(90) == "1.5"
    assert minutes_text(2.4) == "0.04"
    assert float(minutes_text(0.6)) > 0


def test_the_estimate_times_each_members_own_training_code_on_its_clips(corpus: Path, monkeypatch) -> None:
    """The plan's estimate runs a few real steps of the member (its data path, augmentation, cache, loss,
    optimizer) on a sample of its own training clips, not a synthetic step on random audio."""
    from finetune import train as train_module
    from finetune.recipe import member_seconds, plan_members
    from w2v2.data.datasets import load_dataset

    seen: list[tuple[str, int]] = []
    real_prepare, real_epoch = train_module.prepare_fit, train_module.train_epoch

    def prepare(cfg, items, *args):
        seen.append(("prepare", len(items)))
        assert all(it in members[0].train_items for it in items)
        return real_prepare(cfg, items, *args)

    def epoch(fit, step, n):
        seen.append(("epoch", n))
        return real_epoch(fit, step, n)

    monkeypatch.setattr(train_module, "prepare_fit", prepare)
    monkeypatch.setattr(train_module, "train_epoch", epoch)
    members, _ = plan_members(load_dataset(corpus), resolve_run(None, [*FAST, "kinds=[finetune]"]), None)
    timings: dict = {}
    seconds = member_seconds(members[0], 10.0, 2.0, timings)
    (t,) = timings.values()
    assert seen == [("prepare", 16), ("epoch", 1), ("epoch", 2), ("epoch", 3)]  # 4 batches of 4 clips
    assert t["step"] > 0 and t["val"] > 0 and t["predict"] > 0
    assert seconds > len(members[0].train_items) / 4 * t["step"]  # an epoch's steps at least


def test_members_that_train_side_by_side_are_timed_side_by_side(corpus: Path) -> None:
    """With two workers, each kind is timed twice at once in two worker processes, as the run will share the
    cores; with one worker, in this process alone."""
    from finetune.recipe import estimate_seconds, planned_members, time_side_by_side
    from w2v2.data.datasets import load_dataset

    data = load_dataset(corpus)
    members, _ = planned_members(data, resolve_run(None, [*FAST, "workers=2", "kinds=[finetune,scratch]"]), None)
    assert {m.cfg.workers for m in members} == {2}
    timings: dict = {}
    time_side_by_side(members, timings)
    assert sorted(k[0] for k in timings) == ["finetune", "scratch"]
    for t in timings.values():
        assert t["side_by_side"] == 2 and t["step"] > 0 and t["predict"] > 0  # two processes timed it
    before = dict(timings)
    assert estimate_seconds(members, 10.0, 2.0, timings) > 0 and timings == before  # the estimate reuses them
    alone, _ = planned_members(data, resolve_run(None, [*FAST, "workers=1", "kinds=[finetune,scratch]"]), None)
    timings = {}
    time_side_by_side(alone, timings)
    assert timings == {}  # one worker: timed lazily, in this process (member_seconds)


@pytest.mark.parametrize("budget", [[], ["--budget-minutes", "500"]])
def test_a_plan_over_an_hour_names_the_budget_and_says_which_kinds_stop_early(corpus: Path, tmp_path: Path,
                                                                              monkeypatch, capsys, budget) -> None:
    import finetune.recipe as recipe

    # 50 min a member, two at a time: the default's 8 members of 2 seeds take 200 min
    monkeypatch.setattr(recipe, "time_side_by_side", lambda members, timings: None)
    monkeypatch.setattr(recipe, "member_seconds", lambda m, *args: 3000.0)
    main(["train", "--data", str(corpus), "--run", str(tmp_path / "run"), "--dry-run", "--members", "2",
          "workers=2", "threads=1"])
    if budget:
        main(["train", "--data", str(corpus), "--run", str(tmp_path / "run"), "--dry-run", "--members", "2",
              "workers=2", "threads=1", *budget])
    out = capsys.readouterr().out.split("--dry-run: nothing trained")[-2 if budget else 0]
    assert "estimate: 200.0 min" in out
    assert "per member: fine-tune 50.0 min, linear probe 50.0 min, tiny model 50.0 min, descriptors head 50.0 min" \
        in out
    # the tiny model's 80 epochs have patience 20; the fine-tune's 18 epochs have 18: only the tiny one is named
    assert "the estimate counts every epoch; a tiny model stops early after 20 epochs without" in out
    assert "a fine-tune stops early" not in out
    assert ("over 60 min: --budget-minutes N fits the run" in out) == (not budget)


def test_a_descriptors_head_alone_names_only_the_files_it_wrote(corpus: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "desc"
    main(["train", "--data", str(corpus), "--run", str(run), "--members", "1", "kinds=[descriptors]", *FAST])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("run folder:"))
    named = line.split("(metrics.json, ")[1].rstrip(")").split(", ")
    assert "curves.png" not in named and not (run / "curves.png").exists()  # no learning curve to draw
    assert named and all((run / n).exists() for n in named), named
