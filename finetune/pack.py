"""`python -m finetune pack RUN --out DIR`: a trained model or ensemble as a small folder to share or ship.

Each member's checkpoint is written with only the tensors that differ from the weights it started from
(its `init`, e.g. pretrained:small: a frozen CNN and a probe's whole backbone are not stored again) and,
with --half, in fp16. The packed folder is read by evaluate, predict, submit and serve like the run
itself (an ensemble parent of member folders, or one checkpoint); its w2v2.json files name the base,
which must be loadable where the folder is used (the shipped pretrained:NAME always is).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from w2v2.checkpoint import CheckpointError, load_model, read_meta, save_model
from w2v2.emotion.members import ENSEMBLE_FILE, classifier_checkpoint, member_folders, member_weights, travel_folder
from w2v2.training.runs import init_checkpoint


def as_base(init: str) -> str:
    """`init` as a checkpoint's base names it: a ckpt: run folder becomes the checkpoint directory it
    resolves to (`base` names a directory; loading does not look inside run folders)."""
    _, where = init_checkpoint(init)
    return f"ckpt:{where}" if init.startswith("ckpt:") else init


def default_base(ckpt: Path) -> str | None:
    """The init a fine-tuned checkpoint started from, where it names a w2v2 checkpoint (None: scratch, hf:)."""
    init = read_meta(ckpt).get("finetune", {}).get("init") or ""
    if init.startswith(("pretrained:", "ckpt:")):
        try:
            return as_base(init)  # still there
        except (ValueError, FileNotFoundError):
            return None
    return None


def pack(run: Path, out: Path, base: str | None = "auto", half: bool = False) -> list[Path]:
    """Write `run` (a fine-tuning run, checkpoint or ensemble parent) to `out`; returns the checkpoint folders
    written. base: "auto" (each member's own init), None (store every tensor) or an init spec."""
    if out.exists():
        raise FileExistsError(f"--out {out} exists: pack writes a new folder (remove it or choose another)")
    parts = member_folders(run)
    if parts:  # a member whose kind has no vote (weight 0 in the parent's ensemble.json) is never run: left out
        voting = [m for m, w in zip(parts, member_weights(run, parts), strict=True) if w > 0]
        if len(voting) < len(parts):
            print(f"pack: {len(parts) - len(voting)} member(s) without a vote in {run / ENSEMBLE_FILE} left out: "
                  + ", ".join(m.name for m in parts if m not in voting))
        parts = voting
    if not parts and travel_folder(run) is not None:  # a travelling model, a descriptors member: copied as it is
        shutil.copytree(run, out)
        return [out]
    # a descriptors member (a few kB of linear heads, no network) is copied as it is; a network packed
    sources = [(travel_folder(m) or classifier_checkpoint(m), out / m.name) for m in parts] or \
        [(classifier_checkpoint(run), out)]
    tmp = out.with_name(f".{out.name}.packing")
    shutil.rmtree(tmp, ignore_errors=True)
    written = []
    for ckpt, target in sources:
        if travel_folder(ckpt) is not None:
            shutil.copytree(ckpt, tmp / target.relative_to(out))
            written.append(target)
            continue
        meta = read_meta(ckpt)
        if meta.get("base") and base is None:
            raise CheckpointError(f"{ckpt} is itself packed against {meta['base']}: pack it with a base")
        model = load_model(ckpt)
        member_base = default_base(ckpt) if base == "auto" else as_base(base) if base else None
        extra = {k: v for k, v in meta.items() if k not in ("kind", "model", "base")}
        save_model(model, tmp / target.relative_to(out) if target != out else tmp, extra, member_base, half)
        written.append(target)
    if parts and (run / ENSEMBLE_FILE).is_file():  # the kinds' weights in the vote
        shutil.copy2(run / ENSEMBLE_FILE, tmp / ENSEMBLE_FILE)
    tmp.rename(out)
    return written


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
