"""Model checkpoints: `model.safetensors` + `w2v2.json` (kind + resolved config) in a directory.

Design choices: safetensors only (loading never unpickles code); the directory is written to a
temporary sibling and renamed into place, so an interrupted save never leaves a half-written
checkpoint; the config travels with the weights, so a checkpoint rebuilds its own model. A checkpoint
may name a `base` (e.g. pretrained:small) and store only the tensors that differ from it, optionally in
fp16 (`save_model(..., base=, half=True)`): a fine-tune with a frozen CNN, or a linear probe whose
backbone is the base's, then costs what it changed, which is how shipped ensembles fit the size limit.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from w2v2.config import ModelConfig, from_dict, to_dict
from w2v2.model import (
    Wav2Vec2ForClassification,
    Wav2Vec2ForPreTraining,
    backbone_state,
    build_model,
    model_kind,
    unwrap,
)

WEIGHTS, META = "model.safetensors", "w2v2.json"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"  # checkpoints shipped with the package


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the directory or file and the problem."""


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """A write that ran out of space: the message names the path, the space free there and what is intact."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def free_bytes(path: Path) -> int:
    """Free space on the file system that holds `path` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def disk_full(path: Path, needed: int | None = None, intact: str = "") -> DiskFullError:
    """The DiskFullError of a write to `path` that found no space (`needed` bytes, where known)."""
    need = f", about {needed / 1e6:.1f} MB needed" if needed else ""
    return DiskFullError(f"{path}: no space left on the device ({free_bytes(path) / 1e6:.1f} MB free there{need}); "
                         f"free some space or write elsewhere{f'. {intact}' if intact else ''}")


def out_of_space(e: BaseException, path: Path, needed: int | None = None) -> bool:
    """Whether a failed write ran out of space: an OSError that says so, or a library's own error that does
    (safetensors' "StorageFull", "os error 28"), or any failure that leaves less free space at `path` than the
    write `needed` (torch.save's "file write failed" names no cause)."""
    if isinstance(e, OSError) and e.errno is not None:
        return e.errno in NO_SPACE
    text = str(e).lower()
    if any(s in text for s in ("no space left", "storagefull", "os error 28", "code: 28", "quota exceeded")):
        return True
    return needed is not None and free_bytes(path) < needed


def tensor_bytes(state: object) -> int:
    """Bytes of the tensors in a (nested) state: what torch.save or safetensors will write at least."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(tensor_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(tensor_bytes(v) for v in state)
    return 0


def write_dir(final: Path, write: Callable[[Path], object], needed: int, intact: str) -> None:
    """Write a directory through a temporary sibling (`write(tmp)`) and `atomic_dir_replace`: a kill or a
    full disk (DiskFullError naming `final`, whatever the writing library raised) leaves nothing half-written
    and an earlier directory of that name as it was (`intact` says so)."""
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if out_of_space(e, final, needed):
            raise disk_full(final, needed, intact) from None
        raise
    atomic_dir_replace(tmp, final)


def describe_os_error(e: OSError) -> str:
    """One sentence for an OSError of a command (a full disk, a read-only folder, ...), naming the file."""
    if isinstance(e, DiskFullError):
        return str(e)
    where = Path(e.filename) if e.filename else None
    if e.errno in NO_SPACE:
        return str(disk_full(where)) if where else f"no space left on the device: {e.strerror}"
    return f"{where}: {e.strerror}" if where and e.strerror else str(e)


def old_copy(final: Path) -> Path:
    """Where `atomic_dir_replace` keeps the directory it replaces until the new one is in place."""
    return final.with_name(final.name + ".old")


def atomic_dir_replace(tmp: Path, final: Path) -> None:
    """Move the finished directory `tmp` to `final`, replacing any older one.

    A directory cannot be swapped in one rename, so the old one is first renamed to `final.old`; a
    kill between the two renames leaves `final.old` complete, and `recover` loads it in `final`'s
    place until the next save."""
    old = old_copy(final)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def atomic_write(path: Path, write: Callable[[Path], object], needed: int | None = None) -> None:
    """Write a file through a temporary sibling (`write(tmp)`) and one rename: a killed run never leaves
    half a file under `path`, and a failed write (a full disk: DiskFullError, whatever the writing library
    raised; `needed`: the bytes it writes, where known) leaves no temporary file and an earlier file of that
    name as it was. A symbolic link is written through (its target replaced, the link kept), and so is a
    device or a pipe (`--out /dev/null`), which a rename would replace with a plain file."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    special = path.exists() and not path.is_file() and not path.is_dir()
    with tempfile.TemporaryDirectory() if special else nullcontext(None) as scratch:
        tmp = Path(scratch) / path.name if scratch else path.with_suffix(".tmp")
        try:
            write(tmp)
            if special:
                with open(tmp, "rb") as src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            else:
                os.replace(tmp, path)
        except Exception as e:
            tmp.unlink(missing_ok=True)
            if out_of_space(e, path, needed):
                raise disk_full(path, needed, "Nothing was written under that name") from None
            raise


def is_complete(directory: Path) -> bool:
    return (directory / META).is_file() and (directory / WEIGHTS).is_file()


def recover(directory: Path) -> Path:
    """`directory`, or its complete `.old` predecessor when a replace was killed halfway."""
    old = old_copy(directory)
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


def save_model(model: nn.Module, directory: str | Path, extra: dict[str, Any] | None = None,
               base: str | None = None, half: bool = False) -> Path:
    """Write weights and metadata to `directory` atomically; returns the directory.

    base: the checkpoint the model starts from (pretrained:NAME, or ckpt:DIR, a checkpoint directory): only tensors that
    differ from it are stored, and loading fills in the rest from it. half: floating tensors stored in fp16
    (loading casts them back to the model's dtype)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    model = unwrap(model)
    check_finite(model, f"refusing to save {directory}")  # a NaN model must never replace a good one
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if base is not None:
        reference = base_state(base, list(state))
        state = {k: v for k, v in state.items() if k not in reference or not reference[k].equal(v)}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    meta = {"kind": model_kind(model), "model": to_dict(model.cfg), **({"base": base} if base else {}),
            **(extra or {})}
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    needed = sum(v.numel() * v.element_size() for v in state.values())
    try:
        save_file(state, str(tmp / WEIGHTS))
        (tmp / META).write_text(json.dumps(meta, indent=2))
    except Exception as e:  # nothing half-written stays behind; an earlier checkpoint there is untouched
        shutil.rmtree(tmp, ignore_errors=True)
        if out_of_space(e, directory, needed):
            raise disk_full(directory, needed, "An earlier checkpoint there, if any, is intact") from None
        raise
    atomic_dir_replace(tmp, directory)
    return directory


def read_meta(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / META
    if not Path(directory).exists():
        raise FileNotFoundError(f"{directory}: no such file or folder")
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
    state = _read_weights(directory)
    if meta.get("base"):  # only what differs from the base is stored: the rest comes from it
        try:
            keys = list(model.state_dict()) if (kind or stored_kind) == stored_kind else model_keys(stored_kind, meta)
            state = {**base_state(meta["base"], keys), **state}
        except (ValueError, FileNotFoundError) as e:
            raise CheckpointError(f"{directory / META}: its base {meta['base']!r} cannot be loaded: {e}") from None
    try:
        _load_weights(model, kind or stored_kind, stored_kind, state, directory)
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
        assert isinstance(model, Wav2Vec2ForPreTraining)  # built as `kind`
        model.backbone.load_state_dict(backbone_state(state) if stored_kind != "backbone" else state)
    elif kind == "backbone" and stored_kind in ("pretrain", "classifier"):
        model.load_state_dict(backbone_state(state))
    else:
        raise CheckpointError(f"{directory}: cannot turn a {stored_kind} checkpoint into a {kind} model")


def model_keys(kind: str, meta: dict[str, Any]) -> list[str]:
    """The state_dict keys of the `kind` model a checkpoint's metadata describes."""
    return list(build_model(from_dict(ModelConfig, meta["model"]), kind).state_dict())


def base_dir(base: str) -> Path:
    """The checkpoint directory a base spec names: pretrained:NAME (shipped) or ckpt:PATH (that directory
    itself, not a run folder: whoever writes the base resolves one)."""
    kind, _, where = base.partition(":")
    if kind == "pretrained" and where:
        return pretrained_dir(where, f"base={base!r}")
    if kind == "ckpt" and where:
        path = recover(Path(where))
        if not (path / META).is_file():
            raise ValueError(f"base={base!r}: {path} is not a w2v2 checkpoint (no {META})")
        return path
    raise ValueError(f"base={base!r}: a base must be a w2v2 checkpoint (pretrained:NAME or ckpt:PATH)")


def base_state(base: str, keys: list[str]) -> dict[str, Any]:
    """The weights of the base checkpoint `base` (pretrained:NAME or ckpt:DIR) under `keys`: the
    base's tensors of those names (a pretraining base lends a classifier its `backbone.*`)."""
    where = base_dir(base)
    meta = read_meta(where)
    stored = _read_weights(where)
    if meta.get("base"):
        stored = {**base_state(meta["base"], model_keys(meta["kind"], meta)), **stored}
    wanted = set(keys)
    return {k: v for k, v in stored.items() if k in wanted}


def pretrained_names() -> list[str]:
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / META).is_file()) if PRETRAINED_DIR.is_dir() else []


def pretrained_dir(name: str, spec: str) -> Path:
    """The shipped checkpoint `name` (pretrained:NAME); `spec` (the setting that names it) starts the error."""
    if name not in pretrained_names():
        ensemble = " (an ensemble of classifiers: use it with --ckpt, not as one starting point)" if (
            PRETRAINED_DIR / name).is_dir() else ""
        raise ValueError(f"{spec}: no shipped checkpoint {name!r}{ensemble}; available: {pretrained_names()}")
    return PRETRAINED_DIR / name
