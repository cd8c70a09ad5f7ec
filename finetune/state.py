"""Resuming a killed fine-tuning run: after every epoch, the run's state is written to `RUN/resume/`.

It holds the current weights (`model/`, a w2v2 checkpoint) and `trainer.pt` (optimizer, scheduler, gradient
scaler, the Python, torch and generator RNG states, the epoch, step, best score and history), loaded with
weights_only=True. The folder is written whole and renamed into place (`atomic_dir_replace`), so a kill
at any moment leaves the previous epoch's state or the new one, never half of each. Everything else a
run computes before its first epoch (the split, the feature cache, the sampler's order per epoch) follows
from the seed, so `train(..., resume=True)` rebuilds it, restores this state and continues with the
next epoch: the result equals that of an uninterrupted run of the same seed. The folder is removed
once the run has finished.
"""

from __future__ import annotations

import ast
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from w2v2.checkpoint import is_complete, load_model, recover, save_model, tensor_bytes, write_dir

RESUME = "resume"


def save_state(run: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any,
               scaler: torch.amp.GradScaler | None, rng: random.Random, gen: torch.Generator,
               device: torch.device, trainer: dict[str, Any]) -> None:
    """Write the state after an epoch (trainer: epoch, step, best, best_epoch, history, ...)."""
    trainer_state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "scaler": scaler.state_dict() if scaler is not None else None,
                     "python_rng": repr(rng.getstate()), "generator": gen.get_state(),
                     "torch_rng": torch.get_rng_state(),
                     "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None, **trainer}

    def write(tmp: Path) -> None:
        save_model(model, tmp / "model")
        torch.save(trainer_state, tmp / "trainer.pt")

    # the previous epoch's state stays until this one is whole; a full disk is one line (write_dir)
    write_dir(run / RESUME, write, tensor_bytes(trainer_state) + sum(p.numel() * p.element_size()
                                                                      for p in model.state_dict().values()),
              "The previous epoch's state there is intact")


def has_state(run: Path) -> bool:
    folder = recover(run / RESUME)
    return is_complete(folder / "model") and (folder / "trainer.pt").is_file()


def load_state(run: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any,
               scaler: torch.amp.GradScaler | None, rng: random.Random, gen: torch.Generator,
               device: torch.device) -> dict[str, Any]:
    """Restore everything `save_state` wrote, in place; returns the trainer dict."""
    folder = recover(run / RESUME)
    model.load_state_dict(load_model(folder / "model").state_dict())
    state = torch.load(folder / "trainer.pt", map_location="cpu", weights_only=True)
    opt.load_state_dict(state.pop("optimizer"))
    sched.load_state_dict(state.pop("scheduler"))
    scaler_state = state.pop("scaler")
    if scaler is not None and scaler_state is not None:
        scaler.load_state_dict(scaler_state)
    rng.setstate(_to_tuple(ast.literal_eval(state.pop("python_rng"))))
    gen.set_state(state.pop("generator"))
    torch.set_rng_state(state.pop("torch_rng"))
    cuda_rng = state.pop("cuda_rng")
    if cuda_rng is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda_rng, device)
    return state


def clear_state(run: Path) -> None:
    for name in (RESUME, f"{RESUME}.old", f".{RESUME}.tmp"):
        shutil.rmtree(run / name, ignore_errors=True)


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, list | tuple) else x
