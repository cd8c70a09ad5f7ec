"""`python -m finetune export --format onnx --out DIR [--ckpt X] [--int8]`: a model or ensemble as ONNX
(`w2v2.emotion.exported`), checked against the original before the command ends."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from w2v2.emotion.exported import CHECK_SECONDS, check_clips, export_model, require_onnxruntime
from w2v2.emotion.recognizer import EmotionRecognizer


def max_difference(original: EmotionRecognizer, exported: EmotionRecognizer) -> float:
    """max |Δp| between the two models' window probabilities on `check_clips()`."""
    clips = check_clips()
    a, b = original.window_probs(clips), exported.window_probs(clips)
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def cmd_export(ckpt: Path, out: Path, int8: bool, overwrite: bool = False) -> float:
    """Export `ckpt` into `out`, check it, print what was written; returns the check's max |Δp|."""
    require_onnxruntime()
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"--out {out} is not empty: name a new folder (or add --overwrite)")
        shutil.rmtree(out)
    tick = time.perf_counter()
    written = export_model(ckpt, out, int8)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    print(f"exported {len(written)} model(s) from {ckpt} to {out} ({size:.1f} MB, {'int8' if int8 else 'fp32'}) "
          f"in {time.perf_counter() - tick:.0f} s")
    diff = max_difference(EmotionRecognizer.from_pretrained(ckpt), EmotionRecognizer.from_pretrained(out))
    print(f"check: max |Δp| {diff:.2g} against the PyTorch model on {len(CHECK_SECONDS)} test signals "
          f"({', '.join(f'{s:g}' for s in CHECK_SECONDS)} s); use it as --ckpt {out}")
    return diff
