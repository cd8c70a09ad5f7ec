"""ONNX export and runtime of emotion classifiers: `python -m finetune export --format onnx`, and the
members `EmotionRecognizer` runs with onnxruntime (the optional extra `.[onnx]`; PyTorch stays the default).

Design choices:
- an exported folder has the layout of what it was exported from: a network becomes `model.onnx` beside
  a copy of its `w2v2.json` (window, labels, architecture: everything but the weights), an ensemble
  parent one such folder per member under the same names, a travelling model is copied as it is (it has no
  wav2vec 2.0 network: its descriptors and heads, and the shipped model's small log-mel CNN, run in PyTorch
  in milliseconds a window). So `--ckpt DIR`, the Python API and `serve` load it as they load the original,
  and windows, batches, TTA, speech presence and normalisation stay the one inference path's
  (`w2v2.emotion.windows`);
- the graph takes (wave (b, s) float32, padding_mask (b, s) bool) and returns the logits, with batch and
  length dynamic (torch.export's exporter: one graph for every window length and batch size);
- ONNX opset 23, where self-attention is one `Attention` node that onnxruntime runs with its own kernel:
  on two threads 1.15-1.6x the speed of the exporter's default graph (attention spelled out in matrix
  products and a softmax) for a fine-tune, on one thread within noise of it
  (`experiments/onnx_attention.py`, `experiments/results/onnx_attention.txt`). Where the installed
  onnxruntime cannot load that node, the export falls back to the default graph;
- members with the same CNN and window (a recipe's fine-tunes and probes from one init) are exported as one
  graph, `networks_N.onnx` in the parent, that computes their shared parts once and returns each member's
  logits (`w2v2.emotion.shared.SharedClassifiers`); each member folder's `w2v2.json` names that graph and
  its output. Every other network is one `model.onnx` in its folder (weights inside, not in a `.data` file
  beside it), fp32; `int8=True` adds
  onnxruntime's dynamic quantisation of the matrix products (weights int8, activations quantised on the
  fly); the convolutions stay fp32 (the positional convolution's weight is computed from its weight
  norm, which the quantiser cannot take);
- onnxruntime runs with as many threads as PyTorch is given (`--threads`), one operator at a time, its idle
  threads sleeping rather than spinning;
- an int8 graph is run one window at a time: its activations are quantised with one range per batch, so
  in a batch a window's answer would depend on its batch mates (fp32 graphs batch as PyTorch does).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from w2v2.checkpoint import META, read_meta
from w2v2.config import ModelConfig, from_dict
from w2v2.context import PositionalConv, SelfAttention
from w2v2.data.audio import SAMPLE_RATE
from w2v2.emotion.members import (
    ENSEMBLE_FILE,
    classifier_checkpoint,
    load_classifier,
    member_folders,
    trained_window,
    travel_folder,
    voting,
)
from w2v2.emotion.shared import SharedClassifiers, run_groups, shared_parts
from w2v2.model import Wav2Vec2ForClassification, Wav2Vec2Model

ONNX_FILE = "model.onnx"
OPSETS = (23, None)  # ONNX's Attention operator; else the exporter's default (attention as matrix products)
MAX_SECONDS = 600  # the longest input the exported graph is declared for (a window is 8 s)
CHECK_SECONDS = (1.3, 4.0, 9.5)  # the export check's clip lengths: shorter than, about and longer than a window


def require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("ONNX models run with onnxruntime, an optional extra: pip install -e '.[onnx]'") from None
    return onnxruntime


def onnx_graph(ckpt: Path) -> Path | None:
    """The ONNX graph an exported member runs (its own `model.onnx`, or the graph it shares with other members,
    named in its `w2v2.json`), None for anything else."""
    if (Path(ckpt) / ONNX_FILE).is_file():
        return Path(ckpt) / ONNX_FILE
    try:
        onnx = read_meta(Path(ckpt)).get("onnx")
    except Exception:  # no metadata, or not a checkpoint: not an exported member
        return None
    return Path(ckpt) / onnx["file"] if isinstance(onnx, dict) and "file" in onnx else None


def is_onnx(ckpt: Path) -> bool:
    return onnx_graph(ckpt) is not None


class _Logits(nn.Module):
    """The classifier's logits alone: what the exported graph returns."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, wave: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        return self.model(wave, padding_mask).logits


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The exporter and the quantiser narrate each step and warn about their own internals (print, warnings,
    logging): a user needs none of it; errors still raise."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def export_network(ckpt: Path, out: Path, int8: bool = False, model: Wav2Vec2ForClassification | None = None
                   ) -> Path:
    """`out/model.onnx` and `out/w2v2.json` of the classifier checkpoint `ckpt` (`model`: its classifier,
    where the caller has loaded it already); returns `out`."""
    if model is None:
        model, ckpt = load_classifier(ckpt)
    out.mkdir(parents=True, exist_ok=True)
    onnx = export_graph(model, out / ONNX_FILE, int8)
    write_meta(ckpt, out, {"file": ONNX_FILE, **onnx})
    return out


def export_shared(ckpts: list[Path], models: list[Wav2Vec2ForClassification], graph: Path, outs: list[Path],
                  int8: bool = False) -> list[Path]:
    """One graph at `graph` for classifiers with the same CNN (`SharedClassifiers`), and each member's
    `w2v2.json` in its folder of `outs`, naming the graph and its output; returns `outs`."""
    onnx = export_graph(SharedClassifiers(models), graph, int8)
    for j, (ckpt, out) in enumerate(zip(ckpts, outs, strict=True)):
        out.mkdir(parents=True, exist_ok=True)
        write_meta(ckpt, out, {"file": os.path.relpath(graph, out), "output": j, "outputs": len(models), **onnx})
    return outs


def write_meta(ckpt: Path, out: Path, onnx: dict[str, Any]) -> None:
    meta = read_meta(ckpt) | {"onnx": onnx | {"from": str(Path(ckpt).resolve())}}
    meta.pop("base", None)  # the graph holds every weight: nothing to add from an init
    (out / META).write_text(json.dumps(meta, indent=1))


@contextlib.contextmanager
def graph_spelling(model: nn.Module, opset: int | None) -> Iterator[None]:
    """`model`'s modules as the graph spells them, for one export, then as they were (a caller's model keeps its
    PyTorch paths): each self-attention with a (b, 1, t, t) mask where the Attention node (opset 23) takes one,
    each positional conv as conv1d (a Conv node: onnxruntime's DFT ran the spectral form 5x slower,
    docs/benchmark.md)."""
    attention = [m for m in model.modules() if isinstance(m, SelfAttention)]
    convs = [m for m in model.modules() if isinstance(m, PositionalConv)]
    before = [m.square_mask for m in attention], [m.spectral for m in convs]
    for a in attention:
        a.square_mask = opset is not None
    for c in convs:
        c.spectral = False
    try:
        yield
    finally:
        for a, square in zip(attention, before[0], strict=True):
            a.square_mask = square
        for c, spectral in zip(convs, before[1], strict=True):
            c.spectral = spectral


def export_graph(model: nn.Module, path: Path, int8: bool) -> dict[str, Any]:
    """The graph of a classifier (or `SharedClassifiers`) at `path`: (wave, padding_mask) -> logits, batch and
    length dynamic; returns what the metadata records of it (int8, opset, why opset 23 was refused)."""
    example = (torch.randn(2, 3 * SAMPLE_RATE), torch.zeros(2, 3 * SAMPLE_RATE, dtype=torch.bool))
    batch = torch.export.Dim("batch", min=1, max=1024)
    cnn: Wav2Vec2Model = model.cnn if isinstance(model, SharedClassifiers) else model.backbone  # type: ignore[assignment]
    length = torch.export.Dim("samples", min=cnn.feature_encoder.receptive_field, max=MAX_SECONDS * SAMPLE_RATE)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        fp32 = Path(tmp) / ONNX_FILE
        refused = None  # why this onnxruntime could not load the opset-23 graph, where it could not
        for opset in OPSETS:
            with graph_spelling(model, opset), quiet():
                torch.onnx.export(_Logits(model).eval(), example, str(fp32), dynamo=True, external_data=False,
                                  input_names=["wave", "padding_mask"], output_names=["logits"], verbose=False,
                                  dynamic_shapes=({0: batch, 1: length}, {0: batch, 1: length}),
                                  opset_version=opset)
            if opset is None or (refused := load_error(fp32)) is None:
                break
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            with quiet():  # its advice to pre-process the graph first: measured without it
                quantize_dynamic(str(fp32), str(Path(tmp) / "int8.onnx"), weight_type=QuantType.QInt8,
                                 op_types_to_quantize=["MatMul", "Gemm"])
            (Path(tmp) / "int8.onnx").replace(path)
        else:
            fp32.replace(path)
    return {"int8": int8, "opset": graph_opset(path)} | ({"opset_23_refused": refused} if refused else {})


def load_error(path: Path) -> str | None:
    """Why the installed onnxruntime cannot load the graph at `path` (an operator or opset it lacks), or None
    where it can. The export records it beside the graph it falls back to (`onnx.opset_23_refused`)."""
    ort = require_onnxruntime()
    try:
        with quiet():
            ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own error types (NotImplemented, InvalidGraph, ...)
        return f"onnxruntime {ort.__version__}: {str(e).strip()[:300]}"
    return None


def graph_opset(path: Path) -> int:
    """The default-domain ONNX opset of the graph at `path`."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def refuse_exported(source: Path) -> None:
    """ValueError for a folder that already holds ONNX graphs (itself or its members): nothing to export."""
    if is_onnx(source) or any(is_onnx(p) for p in member_folders(source)) or any(source.glob("networks_*.onnx")):
        raise ValueError(f"{source}: already exported to ONNX; export the run it came from (`--ckpt RUN`), or use "
                         f"this folder as it is (`--ckpt {source}`)")


def export_model(source: Path, out: Path, int8: bool = False) -> list[Path]:
    """Export what `source` names (a run folder, checkpoint, ensemble parent or travelling model) into `out`,
    in its layout, leaving out members the ensemble weighs 0; returns the folders written (one per member)."""
    if travel_folder(source) is not None:  # a travelling model, or a recipe's descriptors member
        shutil.copytree(source, out, dirs_exist_ok=True)
        return [out]
    refuse_exported(source)
    parts = member_folders(source)
    if not parts:
        classifier_checkpoint(source)  # a clear error for anything but a classifier, before any work
        return [export_network(source, out, int8)]
    parts = voting(source, parts)  # a member weighed 0 is never run: not exported (a shared graph would compute it)
    for part in parts:  # a descriptors member (a travelling model, no network) is copied as it is
        if travel_folder(part) is None:
            classifier_checkpoint(part)
    out.mkdir(parents=True, exist_ok=True)
    if (source / ENSEMBLE_FILE).is_file():  # the kinds' weights in the vote travel with the members
        shutil.copy2(source / ENSEMBLE_FILE, out / ENSEMBLE_FILE)
    for part in parts:
        if travel_folder(part) is not None:
            shutil.copytree(part, out / part.name, dirs_exist_ok=True)
    nets = [part for part in parts if travel_folder(part) is None]
    ckpts = [classifier_checkpoint(part) for part in nets]
    models = shared_parts(load_classifier(c)[0] for c in ckpts)
    for together in run_groups(models, [trained_window(c) for c in ckpts]):  # as prediction groups them
        if len(together) == 1:
            export_network(ckpts[together[0]], out / nets[together[0]].name, int8, models[together[0]])
        else:
            export_shared([ckpts[i] for i in together], [models[i] for i in together],
                          out / f"networks_{nets[together[0]].name}.onnx", [out / nets[i].name for i in together], int8)
    return [out / part.name for part in parts]


def check_clips(seed: int = 0) -> list[torch.Tensor]:
    """Voice-like test signals (a gliding harmonic tone in noise) of the CHECK_SECONDS lengths."""
    gen = torch.Generator().manual_seed(seed)
    clips = []
    for seconds in CHECK_SECONDS:
        t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        pitch = 140 + 40 * torch.sin(2 * torch.pi * 0.7 * t)
        phase = 2 * torch.pi * torch.cumsum(pitch, 0) / SAMPLE_RATE
        voice = sum(torch.sin(k * phase) / k for k in range(1, 6))
        clips.append(0.1 * voice + 0.01 * torch.randn(t.numel(), generator=gen))
    return clips


@dataclass
class _Output:
    logits: torch.Tensor


class OnnxClassifier(nn.Module):
    """An exported classifier run by onnxruntime, called as the PyTorch model is (`model(wave, padding_mask)
    .logits`, `model.cfg`), so `w2v2.emotion.windows` predicts with it unchanged. It holds no parameters:
    it runs on the CPU. A member of a shared graph (`export_shared`) gets every member's logits (b, k, 6):
    its own are `[:, output]` (`num_outputs` and `output` say so; None for a graph of its own)."""

    def __init__(self, ckpt: Path, threads: int | None = None) -> None:
        super().__init__()
        ort = require_onnxruntime()
        meta = read_meta(ckpt)
        self.cfg = from_dict(ModelConfig, meta["model"])
        # int8 graphs quantise activations with one range over the whole batch: a clip's answer would depend
        # on its batch mates (up to 1.4e-3 in probability), so they are run one window at a time
        self.batch_independent = not meta.get("onnx", {}).get("int8", False)
        # a graph shared by several members (`export_shared`) answers (b, k, num_labels); `output`: this member's
        self.num_outputs: int | None = meta.get("onnx", {}).get("outputs")
        self.output: int | None = meta.get("onnx", {}).get("output")
        graph = onnx_graph(ckpt)
        if graph is None or not graph.is_file():
            raise FileNotFoundError(f"{ckpt}: its ONNX graph {graph or ONNX_FILE} is missing (a member of an "
                                    "exported ensemble needs the folder it was exported into, whole)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # idle worker threads sleep instead of spinning: between graph runs the path's own PyTorch and numpy
        # work (speech detection, windows) needs the cores (int8, one window at a time, two threads: 13.7 ->
        # 24.2 audio-s/s; one thread: the same)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(graph), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # an operator this onnxruntime lacks (a graph exported with a newer one)
            opset = meta.get("onnx", {}).get("opset", "?")
            raise RuntimeError(f"{ckpt}: onnxruntime {ort.__version__} cannot run this graph (ONNX opset {opset}): "
                               f"{str(e).strip()[:300]}. Upgrade onnxruntime (pip install -U onnxruntime), or "
                               f"export the model again where it will run") from None

    def forward(self, wave: torch.Tensor, padding_mask: torch.Tensor | None = None) -> _Output:
        if padding_mask is None:
            padding_mask = torch.zeros(wave.shape, dtype=torch.bool)
        logits = self.session.run(["logits"], {"wave": wave.detach().cpu().float().numpy(),
                                               "padding_mask": padding_mask.cpu().numpy().astype(np.bool_)})[0]
        return _Output(torch.from_numpy(logits))
