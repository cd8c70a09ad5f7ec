"""`python -m finetune export --format onnx --out DIR [--ckpt X] [--int8]`: a model or ensemble as ONNX
(`w2v2.emotion.exported`), checked against the original before the command ends."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from w2v2.data.audio import SAMPLE_RATE
from w2v2.emotion.exported import export_model, require_onnxruntime
from w2v2.emotion.recognizer import EmotionRecognizer

CHECK_SECONDS = (1.3, 4.0, 9.5)  # the check's clip lengths: shorter than, about and longer than a window


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
