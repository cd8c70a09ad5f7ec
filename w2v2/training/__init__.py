"""What both trainers (`pretrain`, `finetune`) share: the device, the learning-rate schedule, the
non-finite-loss policy and mixed precision."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch

Precision = Literal["fp32", "bf16", "auto"]  # of prediction (`inference_precision`)


def warmup_decay(warmup_steps: int, total_steps: int,
                 decay: Literal["linear", "cosine"] = "linear") -> Callable[[int], float]:
    """LR multiplier of update `step` (0-based, for torch's LambdaLR): linear warmup to 1 over
    `warmup_steps`, then linear or cosine decay to 0 at `total_steps` (0 beyond)."""

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1 + math.cos(math.pi * progress)) if decay == "cosine" else 1.0 - progress

    return schedule


class NonFiniteGuard:
    """The policy of both trainers for a NaN/inf loss: skip that update (the weights stay as they were),
    and stop the run after `limit` in a row, which means broken data or a learning rate that diverges,
    not one bad batch. `total` counts every skipped update."""

    def __init__(self, limit: int, advice: str, total: int = 0) -> None:
        self.limit, self.advice, self.total, self.in_a_row = limit, advice, total, 0

    def skip(self, finite: bool, step: int) -> bool:
        """True when the update of `step` must be skipped; RuntimeError after `limit` in a row."""
        if finite:
            self.in_a_row = 0
            return False
        self.in_a_row += 1
        self.total += 1
        if self.in_a_row >= self.limit:
            raise RuntimeError(f"{self.in_a_row} non-finite losses in a row at step {step}: {self.advice}")
        return True


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 matrix products natively: a CUDA GPU that supports it, or a CPU
    with AVX512-BF16 or AMX (oneDNN); elsewhere bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(check and check())
    return False


def resolve_device(spec: str) -> torch.device:
    """`device=auto|cpu|cuda|cuda:N` as a torch.device: auto is the first GPU where there is one, else the CPU.
    A GPU asked for where none is usable is a ValueError that says so."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"device={spec}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={spec}: no CUDA GPU is usable here (torch {torch.__version__}); "
                             "use device=cpu or device=auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device={spec}: this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type != "cpu":
        raise ValueError(f"device={spec}: expected auto, cpu, cuda or cuda:N")
    return device


def resolve_amp(amp: Literal["auto", "none", "bf16", "fp16"], device: torch.device) -> Literal["none", "bf16", "fp16"]:
    """auto: bf16 where `device` computes it natively (a GPU that has it, a CPU with AVX512-BF16/AMX),
    fp16 (with a gradient scaler) on a GPU without bf16, fp32 ("none") elsewhere."""
    if amp != "auto":
        return amp
    if native_bf16(device):
        return "bf16"
    return "fp16" if device.type == "cuda" else "none"


def autocast(amp: Literal["bf16", "fp16", "none"], device: torch.device
             ) -> tuple[AbstractContextManager, torch.amp.GradScaler | None]:
    """The autocast context of a resolved `amp` setting, and the gradient scaler fp16 needs (else None).
    Weights, optimizer state and the loss stay fp32; the precision-sensitive parts of the model (the
    quantizer, the weight-normed positional convolution) turn autocast off themselves."""
    if amp == "none":
        return nullcontext(), None
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16), scaler


def inference_precision(precision: Precision, device: torch.device) -> AbstractContextManager:
    """The autocast context of prediction: fp32 (none), bf16, or auto (bf16 where `device` computes it
    natively, else fp32). bf16 where it is emulated is refused: it would be slower and less exact."""
    if precision == "auto":
        precision = "bf16" if native_bf16(device) else "fp32"
    if precision == "fp32":
        return nullcontext()
    if not native_bf16(device):
        raise ValueError(f"--precision bf16: {device} does not compute bf16 natively (it would be emulated, "
                         "slower than fp32); use fp32")
    return torch.autocast(device.type, dtype=torch.bfloat16)
