"""Training checkpoints: model (safetensors + config via w2v2.checkpoint) plus trainer state
(optimizer, scheduler, step, data position, RNG states) in `trainer.pt`, loaded with
weights_only=True. Each checkpoint directory is written whole, then renamed into place;
`latest` names the newest one and is itself replaced atomically.
"""

from __future__ import annotations

import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from w2v2.checkpoint import atomic_write, is_complete, load_model, save_model, tensor_bytes
from w2v2.training.runs import LATEST, latest_step, write_latest

STEP_NAME = re.compile(r"step_\d+")  # save_checkpoint's folders (not their .old copies)


def save_checkpoint(run: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, trainer: dict[str, Any], extra: dict[str, Any], keep: int) -> Path:
    ckpt_dir = run / "checkpoints"
    final = ckpt_dir / f"step_{trainer['step']:08d}"
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), **trainer,
             "torch_rng": torch.get_rng_state(), "python_rng": repr(random.getstate())}
    save_model(model, final, extra=extra)  # atomic: on a full disk nothing of it is left
    try:
        atomic_write(final / "trainer.pt", lambda tmp: torch.save(state, tmp), needed=tensor_bytes(state))
    except OSError:  # no half checkpoint under a final name; `latest` still names the last complete one
        shutil.rmtree(final, ignore_errors=True)
        raise
    write_latest(run, final)
    # only checkpoints older than this one go: a newer one (left by a run started over) is not this run's to delete
    older = sorted(p for p in ckpt_dir.glob("step_*") if p.is_dir() and STEP_NAME.fullmatch(p.name) and p < final)
    for p in older[:max(len(older) - keep + 1, 0)] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)
    return final


def resumable(path: Path) -> bool:
    """A complete checkpoint directory holding a trainer state."""
    return is_complete(path) and (path / "trainer.pt").is_file()


def latest_checkpoint(run: Path) -> Path | None:
    """The checkpoint resume=auto continues from: the one `checkpoints/latest` names or, when that one is
    gone or incomplete (deleted by hand), the newest complete one, with a warning. Never None while a
    complete checkpoint exists: starting over would overwrite it, and the clean-up of old checkpoints
    delete it; ValueError when `latest` names a missing checkpoint and no other is complete."""
    named = latest_step(run)
    if named is not None and resumable(named):
        return named
    steps = (run / "checkpoints").glob("step_*")
    found = sorted(p for p in steps if STEP_NAME.fullmatch(p.name) and resumable(p))
    if found:
        why = f"names {named.name}, which is missing or incomplete" if named is not None else "is missing"
        warnings.warn(f"{run / 'checkpoints' / LATEST} {why}: resuming from the newest complete checkpoint, "
                      f"{found[-1]}", stacklevel=2)
        return found[-1]
    if named is not None:
        raise ValueError(f"{run / 'checkpoints' / LATEST} names {named.name}, which is missing or incomplete, and "
                         f"{run} holds no other complete checkpoint: start over with resume=none, or use another "
                         "run_dir")
    return None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNG states in place; returns the trainer dict."""
    weights = load_model(path)
    model.load_state_dict(weights.state_dict())
    state = torch.load(path / "trainer.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state.pop("optimizer"))
    scheduler.load_state_dict(state.pop("scheduler"))
    torch.set_rng_state(state.pop("torch_rng"))
    import ast

    random.setstate(_to_tuple(ast.literal_eval(state.pop("python_rng"))))
    return state


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, list | tuple) else x
