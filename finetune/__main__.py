"""python -m finetune [train|evaluate|predict] ...; with no arguments, the zero-download demo.

  python -m finetune train --data DIR [--init pretrained:small | hf:DIR_OR_ID | ckpt:PATH | scratch]
                           [--config YAML] key=value ...
  python -m finetune evaluate --ckpt RUN --data DIR
  python -m finetune predict --ckpt RUN FILES_OR_DIRS... [--out preds.csv]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from finetune.config import FinetuneConfig, resolve_config
from finetune.outputs import check_output_file, prepare_run
from w2v2.config import check_range
from w2v2.datasets import LAYOUTS, DatasetError, check_files, labelled_test, load_dataset

DEMO_DATA, DEMO_RUN = Path("demo/data"), Path("demo/run")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m finetune", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="fine-tune an emotion classifier")
    t.add_argument("--data", required=True, type=Path, help="dataset folder or CSV (layout detected)")
    t.add_argument("--layout", choices=LAYOUTS, help="force a dataset layout")
    t.add_argument("--init", help="scratch | pretrained:small | hf:DIR_OR_ID | ckpt:PATH (overrides the config's init)")
    t.add_argument("--config", default="configs/finetune/tiny.yaml", help="YAML with differences from defaults")
    t.add_argument("--run", type=Path, help="run folder (default runs/finetune-<time>)")
    t.add_argument("--overwrite", action="store_true", help="replace an earlier run in the --run folder")
    t.add_argument("--val-speakers", help="comma-separated speakers to validate on")
    t.add_argument("--skip-bad", action="store_true", help="continue without missing/unreadable files")
    t.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. epochs=5 batch_size=4")
    e = sub.add_parser("evaluate", help="metrics of a fine-tuned model on a labelled dataset")
    e.add_argument("--ckpt", required=True, type=Path, help="run folder (or its best/ checkpoint)")
    e.add_argument("--data", required=True, type=Path)
    e.add_argument("--layout", choices=LAYOUTS)
    e.add_argument("--skip-bad", action="store_true")
    e.add_argument("--out", type=Path, help="write the metrics JSON here")
    r = sub.add_parser("predict", help="emotion of each audio file (long files in windows)")
    r.add_argument("--ckpt", required=True, type=Path)
    r.add_argument("inputs", nargs="+", type=Path, help="audio files or folders")
    r.add_argument("--out", type=Path, help="CSV of predictions (default: print only)")
    r.add_argument("--window-seconds", type=window_seconds, default=8.0)
    # parse_known_args: positionals may sit on both sides of options, which plain parse_args refuses
    args, rest = p.parse_known_args(argv)
    bad = [a for a in rest if a.startswith("-") or (args.command == "train" and "=" not in a)]
    if bad or (rest and args.command == "evaluate"):
        p.error(f"unrecognized arguments: {' '.join(bad or rest)}")
    if args.command == "train":
        args.overrides += rest
    elif args.command == "predict":
        args.inputs += [Path(a) for a in rest]
    return args


def window_seconds(text: str) -> float:
    """--window-seconds, held to the range of the config field it stands for."""
    try:
        return check_range(FinetuneConfig, "window_seconds", float(text), "--window-seconds")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def checked(items: list, skip_bad: bool, what: str) -> list:
    """Missing/unreadable files listed up front; stop unless --skip-bad."""
    good, bad = check_files(items)
    if bad:
        print(f"{len(bad)} of {len(items)} {what} files are missing or unreadable:", file=sys.stderr)
        for item, problem in bad[:20]:
            print(f"  {item.path}: {problem}", file=sys.stderr)
        if len(bad) > 20:
            print(f"  ... and {len(bad) - 20} more", file=sys.stderr)
        if not skip_bad:
            raise SystemExit("stopping: fix or remove them, or pass --skip-bad to continue without them")
        print(f"--skip-bad: continuing with {len(good)} files", file=sys.stderr)
    return good


def cmd_train(args: argparse.Namespace) -> dict:
    from finetune.train import train

    overrides = list(args.overrides) + ([f"init={args.init}"] if args.init else [])
    cfg = resolve_config(args.config, overrides)
    run = args.run or Path("runs") / time.strftime("finetune-%Y%m%d-%H%M%S")
    prepare_run(run, args.overwrite)
    data = load_dataset(args.data, args.layout)
    data.train = checked(data.train, args.skip_bad, "training")
    if data.test and len(checked(data.test, args.skip_bad, "test")) < len(data.test):
        # the submission needs a row for every id: unreadable clips keep theirs, predicted from silence
        print("--skip-bad: their submission rows hold the prediction for silence", file=sys.stderr)
    val_speakers = args.val_speakers.split(",") if args.val_speakers else None
    result = train(data, cfg, run, val_speakers)
    report(result, run)
    return result


def report(result: dict, run: Path) -> None:
    for split in ("validation", "test"):
        if split in result:
            m = result[split]
            print(f"{split:>10}: accuracy {m['accuracy']:.3f}  UAR {m['uar']:.3f}  macro-F1 {m['macro_f1']:.3f}"
                  f"  ({m['n']} clips)")
    print(f"run folder: {run}  (metrics.json, confusion_matrix.png, curves.png, best/)")
    if "submission" in result:
        print(f"submission: {result['submission']}")


def cmd_evaluate(args: argparse.Namespace) -> dict:
    from finetune.data import AudioCache
    from finetune.model import load_classifier
    from finetune.train import evaluate_items
    from w2v2.checkpoint import CheckpointError, read_meta

    if args.out:
        check_output_file(args.out, "--out")
    model, ckpt = load_classifier(args.ckpt)
    window = read_meta(ckpt).get("finetune", {}).get("window_seconds", 8.0)
    data = load_dataset(args.data, args.layout)
    # a competition folder that ships test labels: score the (labelled) test set
    items = labelled_test(data) if data.test_labels else data.train
    items = checked(items, args.skip_bad, "evaluation")
    try:
        metrics, _ = evaluate_items(model, items, AudioCache(items), window, progress=True)
    except ValueError as e:
        raise CheckpointError(f"{ckpt}: {e}") from None
    print(f"accuracy {metrics['accuracy']:.3f}  UAR {metrics['uar']:.3f}  macro-F1 {metrics['macro_f1']:.3f}"
          f"  ({metrics['n']} clips)")
    if args.out:
        args.out.write_text(json.dumps(metrics, indent=2))
    return metrics


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    warnings.simplefilter("once")
    if not argv:
        return demo()
    args = parse_args(argv)
    try:
        if args.command == "train":
            cmd_train(args)
        elif args.command == "evaluate":
            cmd_evaluate(args)
        else:
            from finetune.predict import cmd_predict

            cmd_predict(args)
    except (DatasetError, FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None


def demo() -> None:
    from w2v2.synth import generate_corpus

    start = time.perf_counter()
    if not (DEMO_DATA / "train.csv").is_file():
        print(f"generating the synthetic emotional-speech corpus in {DEMO_DATA} ...")
        generate_corpus(DEMO_DATA, clips=600, seed=0)
    print("fine-tuning the tiny model from scratch on CPU (a few minutes) ...")
    main(["train", "--data", str(DEMO_DATA), "--run", str(DEMO_RUN), "--config", "configs/finetune/tiny.yaml",
          "--overwrite"])  # the demo's folder holds the last demo
    print(f"demo finished in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
