"""What a run folder holds and what an init spec names: the application's side of checkpoints.

A fine-tuning run keeps its best model in `best/`; a pretraining run keeps `checkpoints/step_N/` and a
`checkpoints/latest` pointer to the newest. An init spec (scratch, pretrained:NAME, hf:DIR_OR_ID,
ckpt:PATH) names the weights a run starts from; ckpt: may name a run folder. The model library
(`w2v2.checkpoint`) reads and writes single checkpoint directories and knows neither."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from w2v2.checkpoint import META, atomic_write, load_model, old_copy, pretrained_dir, read_meta, recover
from w2v2.config import ModelConfig, from_dict
from w2v2.convert import load_hf, read_hf_config

LATEST = "latest"
INIT_HELP = "scratch, pretrained:NAME, hf:DIR_OR_ID or ckpt:PATH"


def latest_step(run: Path) -> Path | None:
    """The checkpoint directory a pretraining run's `checkpoints/latest` pointer names, if any."""
    pointer = run / "checkpoints" / LATEST
    return run / "checkpoints" / pointer.read_text().strip() if pointer.is_file() else None


def write_latest(run: Path, step_dir: Path) -> None:
    """Point `checkpoints/latest` at `step_dir`, atomically."""
    atomic_write(run / "checkpoints" / LATEST, lambda tmp: tmp.write_text(step_dir.name))


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory a user means by `path`: a fine-tuning run folder gives its `best/`,
    a pretraining run folder its latest `checkpoints/step_N/`, anything else itself."""
    path = Path(path)
    if (path / "best").is_dir() or old_copy(path / "best").is_dir():
        return recover(path / "best")
    return latest_step(path) or recover(path)


def init_checkpoint(init: str) -> tuple[str, str]:
    """('hf', DIR_OR_ID) or ('ckpt', checkpoint dir) for an init spec; ('scratch', '') for none.

    Specs: scratch; pretrained:NAME (shipped in w2v2/pretrained/); hf:DIR_OR_ID (a transformers
    Wav2Vec2 checkpoint); ckpt:PATH (a w2v2 checkpoint or run folder)."""
    kind, _, where = init.partition(":")
    if init == "scratch":
        return "scratch", ""
    if kind == "pretrained" and where:
        return "ckpt", str(pretrained_dir(where, f"init={init!r}"))
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
