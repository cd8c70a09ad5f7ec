"""ONNX export (`python -m finetune export`, w2v2/emotion/exported.py): the exported folder loads wherever a
model does and gives the PyTorch model's probabilities, ensembles whole, windows unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from finetune.__main__ import main
from w2v2 import EmotionRecognizer
from w2v2.checkpoint import PRETRAINED_DIR
from w2v2.data.audio import SAMPLE_RATE, load_audio
from w2v2.emotion.exported import ONNX_FILE, OnnxClassifier, export_model
from w2v2.emotion.recognizer import OnnxMember, TravelMember

pytest.importorskip("onnxruntime", reason="the .[onnx] extra (make install installs it)")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

RAVDESS = Path(__file__).resolve().parents[3] / "shared" / "data" / "ravdess-16k"
SHIPPED = PRETRAINED_DIR / "emotion-ravdess"


def clips(tmp_path: Path) -> list[Path]:
    """Real acted clips where ../shared holds RAVDESS (one per emotion of actor 1), otherwise voice-like
    synthetic ones; and a 20 s recording (several windows)."""
    real = sorted(RAVDESS.glob("Actor_01/*.wav"))[::10][:6] if RAVDESS.is_dir() else []
    if not real:
        from w2v2.emotion.exported import check_clips

        for i, wave in enumerate(check_clips(seed=1)):
            sf.write(tmp_path / f"synthetic_{i}.wav", wave.numpy(), SAMPLE_RATE)
        real = sorted(tmp_path.glob("synthetic_*.wav"))
    long = torch.cat([load_audio(p) for p in real] * 4)[: 20 * SAMPLE_RATE]
    sf.write(tmp_path / "long.wav", long.numpy(), SAMPLE_RATE)
    return [*real, tmp_path / "long.wav"]


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> Path:
    """An ensemble parent of three shipped members, a fine-tune of pretrained:small and a linear probe of it
    (the same CNN, so one graph), and a tiny model; and a descriptors member (a travelling model as its best/,
    as the recipe writes one)."""
    folder = tmp_path_factory.mktemp("parent") / "run"
    for name in ("member_1", "member_1_probe", "member_2_scratch"):
        shutil.copytree(SHIPPED / name, folder / name)
    shutil.copytree(PRETRAINED_DIR / "emotion", folder / "member_3_descriptors" / "best")
    (folder / "ensemble.json").write_text('{"kind_weights": {"finetune": 0.4, "probe": 0.1, "scratch": 0.3, '
                                          '"descriptors": 0.2}}')
    return folder


@pytest.fixture(scope="module")
def exported(parent: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "model"
    main(["export", "--format", "onnx", "--ckpt", str(parent), "--out", str(out)])
    return out


def test_an_ensemble_is_exported_whole_in_its_layout(exported: Path) -> None:
    assert sorted(p.name for p in exported.iterdir()) == ["ensemble.json", "member_1", "member_1_probe",
                                                          "member_2_scratch", "member_3_descriptors",
                                                          "networks_member_1.onnx"]
    # the fine-tune and the probe share a CNN: one graph in the parent, named with its output in each member
    for j, member in enumerate(("member_1", "member_1_probe")):
        assert [p.name for p in (exported / member).iterdir()] == ["w2v2.json"]
        said = json.loads((exported / member / "w2v2.json").read_text())["onnx"]
        assert (said["file"], said["output"], said["outputs"]) == ("../networks_member_1.onnx", j, 2)
    assert (exported / "member_2_scratch" / ONNX_FILE).is_file()  # its own CNN: its own graph
    # the descriptors member has no network: copied as it is, run by PyTorch beside the graphs
    assert (exported / "member_3_descriptors" / "best" / "travel.json").is_file()
    recognizer = EmotionRecognizer.from_pretrained(exported)
    assert [type(m) for m in recognizer.members] == [OnnxMember, OnnxMember, OnnxMember, TravelMember]
    assert recognizer.weights.tolist() == pytest.approx([0.4, 0.1, 0.3, 0.2])  # the kinds' weights came along
    first, probe, tiny = recognizer.members[:3]
    assert first.model is probe.model and tiny.model is not first.model  # type: ignore[attr-defined]  # one session
    assert all(isinstance(m.model, OnnxClassifier) for m in recognizer.members[:3])  # type: ignore[attr-defined]


def test_a_member_without_the_graph_it_shares_says_so(exported: Path, tmp_path: Path) -> None:
    shutil.copytree(exported / "member_1_probe", tmp_path / "alone")
    with pytest.raises(FileNotFoundError, match=r"alone: its ONNX graph .*networks_member_1.onnx is missing"):
        EmotionRecognizer.from_pretrained(tmp_path / "alone")


def test_attention_is_one_onnx_node_and_an_older_runtime_gets_the_default_graph(exported: Path, tmp_path: Path,
                                                                                  monkeypatch) -> None:
    import onnx

    import w2v2.emotion.exported as ex

    # the fine-tune of small and its probe (4 layers each), the tiny model (2)
    for member, file, layers in (("member_1", "../networks_member_1.onnx", 8), ("member_2_scratch", ONNX_FILE, 2)):
        graph = onnx.load(str(exported / member / file))
        ops = [n.op_type for n in graph.graph.node]
        assert ops.count("Attention") == layers and "Softmax" not in ops
        assert json.loads((exported / member / "w2v2.json").read_text())["onnx"]["opset"] == 23
    # an onnxruntime that cannot load the Attention node: the export falls back to the exporter's default graph
    monkeypatch.setattr(ex, "load_error", lambda path: "onnxruntime 1.0: Attention(23) is not implemented")
    out = ex.export_network(SHIPPED / "member_2_scratch", tmp_path / "fallback")
    ops = [n.op_type for n in onnx.load(str(out / ONNX_FILE)).graph.node]
    assert "Attention" not in ops and ops.count("Softmax") == 2
    said = json.loads((out / "w2v2.json").read_text())["onnx"]
    assert said["opset"] < 23 and said["opset_23_refused"] == "onnxruntime 1.0: Attention(23) is not implemented"
    wave = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3 * SAMPLE_RATE)).astype(np.float32))
    mask = torch.zeros(wave.shape, dtype=torch.bool)
    mask[1, -SAMPLE_RATE:] = True  # one padded row
    a = OnnxClassifier(out)(wave, mask).logits
    b = OnnxClassifier(exported / "member_2_scratch")(wave, mask).logits
    assert torch.allclose(a, b, atol=1e-4)  # both graphs compute the same model


def test_a_graph_this_onnxruntime_cannot_run_says_so(exported: Path, tmp_path: Path) -> None:
    import onnx

    folder = tmp_path / "future"
    shutil.copytree(exported / "member_2_scratch", folder)
    graph = onnx.load(str(folder / ONNX_FILE))
    next(n for n in graph.graph.node if n.op_type == "Attention").op_type = "NoSuchOperator"
    onnx.save(graph, str(folder / ONNX_FILE))
    with pytest.raises(RuntimeError, match=r"future: onnxruntime .* cannot run this graph \(ONNX opset 23\).*Upgrade"):
        OnnxClassifier(folder)


def test_bf16_asked_of_onnx_graphs_is_said_to_change_nothing(exported: Path) -> None:
    from w2v2.training import native_bf16

    if not native_bf16(torch.device("cpu")):
        pytest.skip("bf16 is refused on a CPU without native bf16, before any member is looked at")
    with pytest.warns(UserWarning, match="precision bf16 changes nothing for them"):
        EmotionRecognizer.from_pretrained(exported, precision="bf16")


def test_the_exported_ensemble_gives_pytorchs_probabilities_on_real_clips(parent: Path, exported: Path,
                                                                            tmp_path: Path) -> None:
    files = clips(tmp_path)
    torch_model, onnx_model = EmotionRecognizer.from_pretrained(parent), EmotionRecognizer.from_pretrained(exported)
    waves = [load_audio(f) for f in files]
    for a, b in zip(torch_model.window_probs(waves, each=True), onnx_model.window_probs(waves, each=True), strict=True):
        assert a.shape == b.shape and float((a - b).abs().max()) <= 1e-3  # each member, the shared graph's too
    for a, b in zip(torch_model.predict_many(files), onnx_model.predict_many(files), strict=True):
        assert a.windows.shape == b.windows.shape  # the same windows: the 20 s file has several
        assert np.abs(a.windows.numpy() - b.windows.numpy()).max() <= 1e-3
        assert a.label == b.label
    assert torch_model.predict(files[-1]).windows.shape[0] > 1


def test_predict_takes_the_exported_folder(parent: Path, exported: Path, tmp_path: Path) -> None:
    files = [str(p) for p in clips(tmp_path)]
    main(["predict", "--ckpt", str(exported), *files, "--out", str(tmp_path / "onnx.csv")])
    main(["predict", "--ckpt", str(parent), *files, "--out", str(tmp_path / "torch.csv")])
    a, b = pd.read_csv(tmp_path / "onnx.csv"), pd.read_csv(tmp_path / "torch.csv")
    assert list(a.label) == list(b.label)
    probs = [c for c in a.columns if c.startswith("p_")]
    assert np.abs(a[probs].to_numpy() - b[probs].to_numpy()).max() <= 1e-3


def test_int8_and_a_travelling_model_and_a_full_folder(parent: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "int8"
    main(["export", "--ckpt", str(parent / "member_2_scratch"), "--out", str(out), "--int8"])
    said = capsys.readouterr().out
    assert "int8" in said and "max |Δp|" in said
    diff = float(said.split("max |Δp| ")[1].split(",")[0])
    logits = float(said.split("max |Δlogit| ")[1].split()[0])
    assert 0 < diff < 0.05 and 1e-3 < logits < 1.0  # quantised: close, not equal (the logits show it)
    with pytest.raises(SystemExit, match="is not empty"):
        main(["export", "--ckpt", str(parent), "--out", str(out)])
    with pytest.raises(SystemExit, match="already exported to ONNX"):  # not "no model.safetensors"
        main(["export", "--ckpt", str(out), "--out", str(tmp_path / "again")])
    travel = export_model(PRETRAINED_DIR / "emotion", tmp_path / "travel")
    wave = load_audio(clips(tmp_path)[0])
    assert travel == [tmp_path / "travel"]
    a = EmotionRecognizer.from_pretrained("pretrained:emotion").predict(wave.numpy(), SAMPLE_RATE)
    b = EmotionRecognizer.from_pretrained(tmp_path / "travel").predict(wave.numpy(), SAMPLE_RATE)
    assert a.probs == b.probs


def test_a_run_of_descriptors_members_alone_is_exported_as_it_is(tmp_path: Path, capsys) -> None:
    """A recipe run with kinds=[descriptors]: no network anywhere, so nothing to check logits of (export had
    looked for one in the parent folder and failed)."""
    run = tmp_path / "run"
    for k in (1, 2):
        shutil.copytree(PRETRAINED_DIR / "emotion", run / f"member_{k}_descriptors" / "best")
    main(["export", "--ckpt", str(run), "--out", str(tmp_path / "out")])
    assert "copied as it is" in capsys.readouterr().out
    wave = load_audio(clips(tmp_path)[0]).numpy()
    a = EmotionRecognizer.from_pretrained(run).predict(wave, SAMPLE_RATE)
    assert a.probs == EmotionRecognizer.from_pretrained(tmp_path / "out").predict(wave, SAMPLE_RATE).probs
    with pytest.raises(SystemExit, match="no wav2vec 2.0 network to quantise"):
        main(["export", "--ckpt", str(run), "--out", str(tmp_path / "o8"), "--int8"])


def test_an_int8_graph_answers_a_clip_the_same_whatever_its_batch_mates(parent: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8"  # the fine-tune (layer-norm CNN: windows of several lengths share padded batches)
    main(["export", "--ckpt", str(parent / "member_1"), "--out", str(out), "--int8"])
    recognizer = EmotionRecognizer.from_pretrained(out)
    files = clips(tmp_path)
    together = recognizer.predict_many(files)
    for file, answer in zip(files, together, strict=True):
        alone = recognizer.predict(file)
        assert torch.equal(alone.windows, answer.windows)  # dynamic quantisation: one range per batch


def test_export_never_removes_the_model_or_an_earlier_export_it_cannot_replace(parent: Path, tmp_path: Path,
                                                                                monkeypatch) -> None:
    import finetune.export as export_cli

    model = tmp_path / "model"
    shutil.copytree(parent / "member_2_scratch", model)
    files = sorted(p.name for p in model.rglob("*"))
    for out in (model, tmp_path, model / "onnx"):  # the model itself, a folder holding it, a folder inside it
        with pytest.raises(SystemExit, match="--out .* (is or holds|lies inside) the model being exported"):
            main(["export", "--ckpt", str(model), "--out", str(out), "--overwrite"])
    assert sorted(p.name for p in model.rglob("*")) == files
    earlier = tmp_path / "earlier"
    main(["export", "--ckpt", str(model), "--out", str(earlier)])
    stamp = (earlier / ONNX_FILE).stat().st_mtime_ns
    with pytest.raises(SystemExit, match="no such file or folder"):  # a mistyped --ckpt
        main(["export", "--ckpt", str(tmp_path / "modle"), "--out", str(earlier), "--overwrite"])

    def broken(*args, **kwargs):
        raise RuntimeError("the exporter failed")

    monkeypatch.setattr(export_cli, "export_model", broken)
    with pytest.raises((SystemExit, RuntimeError), match="the exporter failed"):
        main(["export", "--ckpt", str(model), "--out", str(earlier), "--overwrite"])
    assert (earlier / ONNX_FILE).stat().st_mtime_ns == stamp  # the earlier export is still there, untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".earlier")] == []  # no half export left
    with pytest.raises(SystemExit, match=r"travelling model \(or its members are\): it has no wav2vec 2.0 network"):
        main(["export", "--ckpt", "pretrained:emotion", "--out", str(tmp_path / "t8"), "--int8"])


def test_the_benchmark_table_is_the_runs_output() -> None:
    """docs/benchmark.md's runtime table gives experiments/results/inference.txt's figures."""
    root = Path(__file__).resolve().parents[2]
    run = (root / "experiments" / "results" / "inference.txt").read_text()
    docs = (root / "docs" / "benchmark.md").read_text()
    measured = [r.strip("|").split("|") for r in run.splitlines() if r.startswith(("| pytorch", "| onnx"))]
    shown = [r.strip("|").split("|") for r in docs.splitlines() if r.startswith(("| PyTorch ", "| ONNX "))]
    assert len(measured) == len(shown) == 10
    for m, d in zip(measured, shown, strict=True):
        assert m[0].strip().lower() == d[0].strip().lower() and m[1].strip() == d[1].strip()
        assert [m[2].strip(), m[3].strip()] == [d[2].strip(), d[3].strip()]  # audio-s/s and the ratio


def test_without_onnxruntime_export_says_which_extra_to_install(monkeypatch, tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    with pytest.raises(SystemExit, match=r"optional extra: pip install -e '\.\[onnx\]'"):
        main(["export", "--ckpt", str(SHIPPED / "member_2_scratch"), "--out", str(tmp_path / "x")])


def test_an_out_folder_that_cannot_be_written_is_named_not_its_temporary(tmp_path: Path, monkeypatch) -> None:
    import errno

    import finetune.export as export_cli

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".model.x1y2"))

    monkeypatch.setattr(export_cli.tempfile, "TemporaryDirectory", read_only)
    with pytest.raises(SystemExit, match=r"--out .*model: cannot write in .* \(Read-only file system\)$"):
        main(["export", "--ckpt", "pretrained:emotion", "--out", str(tmp_path / "model")])


def test_members_the_ensemble_weighs_zero_are_left_out(tmp_path: Path, capsys) -> None:
    """A kind weighted 0 in ensemble.json is never run: its members are not exported (in a shared graph they
    would be computed on every batch for nothing)."""
    from w2v2.checkpoint import save_model
    from w2v2.config import apply_overrides, preset
    from w2v2.model import build_model

    torch.manual_seed(0)
    model = build_model(apply_overrides(preset("tiny"), ["head.num_labels=6", "encoder.norm=layer"]), "classifier")
    run = tmp_path / "run"
    for name in ("member_1", "member_1_probe"):  # the same CNN: one graph, were both exported
        save_model(model, run / name / "best", extra={"finetune": {"window_seconds": 1.0}})
    (run / "ensemble.json").write_text('{"kind_weights": {"finetune": 1.0, "probe": 0.0}}')
    main(["export", "--ckpt", str(run), "--out", str(tmp_path / "onnx")])
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == ["ensemble.json", "member_1"]
    assert (tmp_path / "onnx" / "member_1" / ONNX_FILE).is_file()
    assert "1 member(s) weighted 0 in ensemble.json left out" in capsys.readouterr().out


def test_export_leaves_the_callers_model_on_its_pytorch_paths(tmp_path: Path) -> None:
    """The graph spells the positional conv as conv1d and attention with a square mask, for the export only: the
    model handed in keeps its spectral conv and its key-padding mask afterwards."""
    from w2v2.config import apply_overrides, preset
    from w2v2.context import PositionalConv, SelfAttention
    from w2v2.emotion.exported import export_graph
    from w2v2.model import build_model

    cfg = apply_overrides(preset("tiny"), ["context.pos_conv_kernel=32", "context.pos_conv_groups=4"])
    model = build_model(cfg, "classifier").eval()
    conv = next(m for m in model.modules() if isinstance(m, PositionalConv))
    attention = [m for m in model.modules() if isinstance(m, SelfAttention)]
    assert conv.spectral and not any(a.square_mask for a in attention)
    export_graph(model, tmp_path / "model.onnx", int8=False)
    assert (tmp_path / "model.onnx").is_file()
    assert conv.spectral and not any(a.square_mask for a in attention)
