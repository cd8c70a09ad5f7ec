"""Training checkpoints: model (safetensors + config via w2v2.checkpoint) plus trainer state
(optimizer, scheduler, step, data position, RNG states) in `trainer.pt`, loaded with
weights_only=True. Each checkpoint directory is written whole, then renamed into place;
`latest` names the newest one and is itself replaced atomically.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import torch

from w2v2.checkpoint import atomic_write, latest_step, load_model, save_model, write_latest


def save_checkpoint(run: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, trainer: dict[str, Any], extra: dict[str, Any], keep: int) -> Path:
    ckpt_dir = run / "checkpoints"
    final = ckpt_dir / f"step_{trainer['step']:08d}"
    save_model(model, final, extra=extra)
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), **trainer,
             "torch_rng": torch.get_rng_state(), "python_rng": repr(random.getstate())}
    atomic_write(final / "trainer.pt", lambda tmp: torch.save(state, tmp))
    write_latest(run, final)
    old = sorted(p for p in ckpt_dir.glob("step_*") if p.is_dir())[:-keep] if keep > 0 else []
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
    return final


def latest_checkpoint(run: Path) -> Path | None:
    """The run's latest checkpoint if it holds a trainer state to resume from."""
    path = latest_step(run)
    return path if path is not None and (path / "trainer.pt").is_file() else None


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
