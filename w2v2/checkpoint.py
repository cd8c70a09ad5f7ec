"""Model checkpoints: `model.safetensors` + `w2v2.json` (kind + resolved config) in a directory.

Design choices: safetensors only (loading never unpickles code); the directory is written to a
temporary sibling and renamed into place, so an interrupted save never leaves a half-written
checkpoint; the config travels with the weights, so a checkpoint rebuilds its own model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from w2v2.config import ModelConfig, from_dict, to_dict
from w2v2.convert import load_hf, read_hf_config
from w2v2.model import Wav2Vec2ForClassification, build_model, model_kind, unwrap

WEIGHTS, META, LATEST = "model.safetensors", "w2v2.json", "latest"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"  # checkpoints shipped with the package
INIT_HELP = "scratch, pretrained:NAME, hf:DIR_OR_ID or ckpt:PATH"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the directory or file and the problem."""


def _old(final: Path) -> Path:
    return final.with_name(final.name + ".old")


def atomic_dir_replace(tmp: Path, final: Path) -> None:
    """Move the finished directory `tmp` to `final`, replacing any older one.

    A directory cannot be swapped in one rename, so the old one is first renamed to `final.old`; a
    kill between the two renames leaves `final.old` complete, and `recover` loads it in `final`'s
    place until the next save."""
    old = _old(final)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write a file through a temporary sibling (`write(tmp)`) and one rename: a killed run never leaves
    half a file under `path`."""
    tmp = path.with_suffix(".tmp")
    write(tmp)
    os.replace(tmp, path)


def latest_step(run: Path) -> Path | None:
    """The checkpoint directory a pretraining run's `checkpoints/latest` pointer names, if any."""
    pointer = run / "checkpoints" / LATEST
    return run / "checkpoints" / pointer.read_text().strip() if pointer.is_file() else None


def write_latest(run: Path, step_dir: Path) -> None:
    """Point `checkpoints/latest` at `step_dir`, atomically."""
    atomic_write(run / "checkpoints" / LATEST, lambda tmp: tmp.write_text(step_dir.name))


def is_complete(directory: Path) -> bool:
    return (directory / META).is_file() and (directory / WEIGHTS).is_file()


def recover(directory: Path) -> Path:
    """`directory`, or its complete `.old` predecessor when a replace was killed halfway."""
    old = _old(directory)
    if not is_complete(directory) and is_complete(old):
        warnings.warn(f"{directory}: missing (a save was interrupted); using the previous checkpoint {old}",
                      stacklevel=2)
        return old
    return directory


def check_finite(model: nn.Module, where: str | Path) -> None:
    """CheckpointError naming `where` if any weight is NaN or infinite."""
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise CheckpointError(f"{where}: non-finite (NaN/inf) weights in {len(bad)} tensor(s), e.g. {bad[:3]}")


def save_model(model: nn.Module, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write weights and metadata to `directory` atomically; returns the directory."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    model = unwrap(model)
    check_finite(model, f"refusing to save {directory}")  # a NaN model must never replace a good one
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS))
    meta = {"kind": model_kind(model), "model": to_dict(model.cfg), **(extra or {})}
    (tmp / META).write_text(json.dumps(meta, indent=2))
    atomic_dir_replace(tmp, directory)
    return directory


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory a user means by `path`: a fine-tuning run folder gives its `best/`,
    a pretraining run folder its latest `checkpoints/step_N/`, anything else itself."""
    path = Path(path)
    if (path / "best").is_dir() or _old(path / "best").is_dir():
        return recover(path / "best")
    return latest_step(path) or recover(path)


def read_meta(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / META
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: not a w2v2 checkpoint (no {META})")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable checkpoint metadata ({e}); the checkpoint is damaged") from None
    if not isinstance(meta, dict) or "kind" not in meta or "model" not in meta:
        raise CheckpointError(f"{path}: not w2v2 checkpoint metadata (needs 'kind' and 'model')")
    return meta


def _read_weights(directory: Path) -> dict[str, Any]:
    path = directory / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: no {WEIGHTS}")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error type (truncated file, bad header)
        raise CheckpointError(f"{path}: unreadable weights ({type(e).__name__}: {e}); the file is damaged or "
                              "truncated") from None


def load_model(directory: str | Path, kind: str | None = None, cfg: ModelConfig | None = None) -> nn.Module:
    """Rebuild the model stored in `directory`.

    kind: the model to return; a pretraining checkpoint loaded as "classifier" keeps its backbone
    and gets a fresh head. cfg: overrides the stored config (same architecture, e.g. other dropout).
    """
    directory = Path(directory)
    meta = read_meta(directory)
    stored_kind = meta["kind"]
    try:
        cfg = cfg or from_dict(ModelConfig, meta["model"])
        model = build_model(cfg, kind or stored_kind)
    except ValueError as e:
        raise CheckpointError(f"{directory / META}: invalid model config: {e}") from None
    try:
        _load_weights(model, kind or stored_kind, stored_kind, _read_weights(directory), directory)
    except RuntimeError as e:  # load_state_dict: missing/unexpected keys or shapes
        first = str(e).strip().splitlines()
        raise CheckpointError(f"{directory}: the weights in {WEIGHTS} do not fit the config in {META} (was "
                              f"either edited?): {' '.join(first[1:3]) if len(first) > 1 else first[0]}") from None
    check_finite(model, directory)
    return model


def _load_weights(model: nn.Module, kind: str, stored_kind: str, state: dict[str, Any], directory: Path) -> None:
    if kind == stored_kind:
        model.load_state_dict(state)
    elif kind == "classifier" and isinstance(model, Wav2Vec2ForClassification):
        model.load_backbone_from(state)
    elif kind == "pretrain":  # continued pretraining from a fine-tuned model: a fresh quantizer
        model.backbone.load_state_dict({k[len("backbone."):]: v for k, v in state.items()
                                        if k.startswith("backbone.")} if stored_kind != "backbone" else state)
    elif kind == "backbone" and stored_kind in ("pretrain", "classifier"):
        model.load_state_dict({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")})
    else:
        raise CheckpointError(f"{directory}: cannot turn a {stored_kind} checkpoint into a {kind} model")


def pretrained_names() -> list[str]:
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / META).is_file()) if PRETRAINED_DIR.is_dir() else []


def init_checkpoint(init: str) -> tuple[str, str]:
    """('hf', DIR_OR_ID) or ('ckpt', checkpoint dir) for an init spec; ('scratch', '') for none.

    Specs: scratch; pretrained:NAME (shipped in w2v2/pretrained/); hf:DIR_OR_ID (a transformers
    Wav2Vec2 checkpoint); ckpt:PATH (a w2v2 checkpoint or run folder)."""
    kind, _, where = init.partition(":")
    if init == "scratch":
        return "scratch", ""
    if kind == "pretrained" and where:
        if where not in pretrained_names():
            raise ValueError(f"init={init!r}: no shipped checkpoint {where!r}; available: {pretrained_names()}")
        return "ckpt", str(PRETRAINED_DIR / where)
    if kind == "hf" and where:
        return "hf", where
    if kind == "ckpt" and where:
        path = resolve_checkpoint(where)
        if not (path / META).is_file():
            raise FileNotFoundError(f"init={init!r}: {path} is not a w2v2 checkpoint or run folder (no {META})")
        return "ckpt", str(path)
    raise ValueError(f"init={init!r}: use {INIT_HELP}")


def init_config(init: str) -> ModelConfig | None:
    """The architecture an init spec brings (read from its config, weights not loaded); None for scratch."""
    kind, where = init_checkpoint(init)
    if kind == "scratch":
        return None
    return read_hf_config(where) if kind == "hf" else from_dict(ModelConfig, read_meta(where)["model"])


def load_init(init: str, kind: str | None) -> nn.Module | None:
    """The `kind` model ("pretrain", "classifier", "backbone"; None: the stored kind) holding an init
    spec's weights; parts the source lacks (a quantizer, a head) start from random weights. None for
    scratch."""
    source, where = init_checkpoint(init)
    if source == "scratch":
        return None
    return load_hf(where, kind=kind) if source == "hf" else load_model(where, kind=kind)
