"""python -m pretrain [--config configs/pretrain/tiny.yaml] [key=value ...]
python -m pretrain export CHECKPOINT OUT_DIR        (a transformers directory, via save_hf)

Multi-GPU / multi-process: torchrun --nproc_per_node=N -m pretrain --config ... (see README).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from w2v2.training.cli import parse_with_overrides


def export(argv: list[str]) -> None:
    from w2v2.checkpoint import describe_os_error, load_model
    from w2v2.convert import save_hf
    from w2v2.training.runs import resolve_checkpoint

    p = argparse.ArgumentParser(prog="python -m pretrain export")
    p.add_argument("checkpoint", type=Path, help="a checkpoint directory, or a run folder (its latest)")
    p.add_argument("out_dir", type=Path)
    args = p.parse_args(argv)
    if not args.checkpoint.exists():
        raise SystemExit(f"error: {args.checkpoint}: no such checkpoint or run folder")
    try:
        out = save_hf(load_model(resolve_checkpoint(args.checkpoint)), args.out_dir)
    except ValueError as e:  # not a checkpoint, a damaged one
        raise SystemExit(f"error: {e}") from None
    except OSError as e:  # an unwritable out_dir, a full disk
        raise SystemExit(f"error: {describe_os_error(e)}") from None
    print(f"wrote a transformers Wav2Vec2ForPreTraining directory: {out}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "export":
        return export(argv[1:])
    p = argparse.ArgumentParser(prog="python -m pretrain", description="wav2vec 2.0 self-supervised pretraining")
    p.add_argument("--config", default="configs/pretrain/tiny.yaml", help="YAML with differences from defaults")
    p.add_argument("--strict", action="store_true", help="stop at the first unusable audio file")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. optim.max_steps=100 data.path=DIR")
    args = parse_with_overrides(p, argv)
    from pretrain.config import resolve_run
    from pretrain.train import pretrain
    from w2v2.checkpoint import describe_os_error

    try:
        cfg, model_cfg = resolve_run(args.config, args.overrides + (["data.strict=true"] if args.strict else []))
        stats = pretrain(cfg, model_cfg)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    except OSError as e:  # a full disk, a read-only folder: one sentence (checkpoints are written atomically)
        raise SystemExit(f"error: {describe_os_error(e)}") from None
    if stats.get("first") and stats.get("last"):
        f, last = stats["first"], stats["last"]
        print(f"step {f['step']}: contrastive acc {f['accuracy']:.3f}, code perplexity {f['perplexity']:.1f}  ->  "
              f"step {last['step']}: acc {last['accuracy']:.3f}, perplexity {last['perplexity']:.1f}; "
              f"{stats['audio_seconds_per_second']:.1f} audio-s/s; checkpoints in {cfg.run_dir}/checkpoints")
        from pretrain.plots import plot_log

        if int(__import__("os").environ.get("RANK", "0")) == 0:
            plot_log(Path(cfg.run_dir) / "log.jsonl", Path(cfg.run_dir) / "curves.png")


if __name__ == "__main__":
    main()
