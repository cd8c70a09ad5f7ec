"""`python -m finetune export --format onnx --out DIR [--ckpt X] [--int8]`: a model or ensemble as ONNX
(`w2v2.emotion.exported`), checked against the original before the command ends.

The export is written into a new folder beside `--out` and takes its place only once it is complete and
checked, so `--overwrite` never loses the earlier export to a failed one, and an `--out` that is or holds
the `--ckpt` is refused before anything is removed."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch

from w2v2.emotion.exported import (
    CHECK_SECONDS,
    OnnxClassifier,
    check_clips,
    export_model,
    refuse_exported,
    require_onnxruntime,
)
from w2v2.emotion.members import load_classifier, member_folders, travel_folder, voting
from w2v2.emotion.recognizer import EmotionRecognizer


def max_difference(original: EmotionRecognizer, exported: EmotionRecognizer) -> float:
    """max |Δp| between the two models' window probabilities on `check_clips()`."""
    clips = check_clips()
    a, b = original.window_probs(clips), exported.window_probs(clips)
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def networks(source: Path) -> list[Path]:
    """The networks `source` holds (itself, or its members that are not descriptors members): [] for a
    travelling model, or a run whose members are all descriptors heads."""
    parts = member_folders(source)
    if not parts:
        return [] if travel_folder(source) is not None else [source]
    return [p for p in voting(source, parts) if travel_folder(p) is None]


def max_logit_difference(source: Path, out: Path) -> float | None:
    """max |Δlogit| between each source network and its exported graph on `check_clips()`, one clip at a time
    and as one padded batch (None: no network). Unlike probabilities, logits show a difference where the
    softmax saturates."""
    pairs = [(src, out / src.relative_to(source)) for src in networks(source)]
    if not pairs:
        return None
    clips = check_clips()
    wave = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)
    mask = torch.arange(wave.shape[1])[None] >= torch.tensor([c.numel() for c in clips])[:, None]
    worst = 0.0
    for src, dst in pairs:
        model, _ = load_classifier(src)
        graph = OnnxClassifier(dst)
        model.eval()
        with torch.no_grad():
            inputs = [(c[None], torch.zeros(1, c.numel(), dtype=torch.bool)) for c in clips]
            if graph.batch_independent:  # an int8 graph is run one window at a time (see OnnxClassifier)
                inputs.append((wave, mask))
            for w, m in inputs:
                got = graph(w, m).logits  # a graph shared by several members: this member's output
                got = got if graph.output is None else got[:, graph.output]
                worst = max(worst, float((model(w, m).logits - got).abs().max()))
    return worst


def refuse_unsafe_out(ckpt: Path, out: Path) -> None:
    """--out may not be --ckpt, hold it, or lie inside it: replacing it would remove the model itself."""
    src, dst = ckpt.resolve(), out.resolve()
    if dst == src or dst in src.parents:
        raise ValueError(f"--out {out} is or holds the model being exported ({ckpt}): name a new folder")
    if src in dst.parents:
        raise ValueError(f"--out {out} lies inside the model being exported ({ckpt}): name a folder outside it")


def cmd_export(ckpt: Path, out: Path, int8: bool, overwrite: bool = False) -> float:
    """Export `ckpt` into `out`, check it, print what was written; returns the check's max |Δp|."""
    require_onnxruntime()
    if not ckpt.exists():
        raise ValueError(f"--ckpt {ckpt}: no such file or folder")
    refuse_unsafe_out(ckpt, out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file: name a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"--out {out} is not empty: name a new folder (or add --overwrite)")
    if not networks(ckpt):
        if int8:
            raise ValueError(f"{ckpt} is a travelling model (or its members are): it has no wav2vec 2.0 network to "
                             "quantise (drop --int8); exported as it is, it runs as fast as the original")
    else:
        refuse_exported(ckpt)  # before any folder is made (export_model's own check, for its other callers)
    try:  # before any work: the folder the export is written into, beside --out
        out.parent.mkdir(parents=True, exist_ok=True)
        scratch = tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.")
    except OSError as e:
        raise ValueError(f"--out {out}: cannot write in {out.parent} ({e.strerror})") from None
    tick = time.perf_counter()
    with scratch as tmp:
        new = Path(tmp) / out.name
        written = export_model(ckpt, new, int8)
        diff = max_difference(EmotionRecognizer.from_pretrained(ckpt), EmotionRecognizer.from_pretrained(new))
        logits = max_logit_difference(ckpt, new)
        if out.exists():  # only now, with the new export complete and checked, does the old one go
            shutil.rmtree(out)
        new.replace(out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    signals = f"{len(CHECK_SECONDS)} test signals ({', '.join(f'{s:g}' for s in CHECK_SECONDS)} s)"
    if logits is None:
        print(f"{ckpt} is a travelling model (descriptors, linear heads and at most a small log-mel CNN, no wav2vec "
              "2.0 network; or a run of such members): "
              f"copied as it is to {out} "
              f"({size:.1f} MB); check: max |Δp| {diff:.2g} on {signals}; use it as --ckpt {out}")
        return diff
    parts = member_folders(ckpt)
    unused = len(parts) - len(written) if parts else 0  # members its ensemble.json weighs 0: never run
    print(f"exported {len(written)} model(s) from {ckpt} to {out} ({size:.1f} MB, {'int8' if int8 else 'fp32'}"
          f"{f'; {unused} member(s) weighted 0 in ensemble.json left out' if unused else ''}) "
          f"in {time.perf_counter() - tick:.0f} s")
    print(f"check against the PyTorch model on {signals}: max |Δp| {diff:.2g}, max |Δlogit| {logits:.2g}"
          f"{' (int8: expect about 1e-2 in probability on real speech)' if int8 else ''}; use it as --ckpt {out}")
    return diff
