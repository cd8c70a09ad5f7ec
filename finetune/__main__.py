"""python -m finetune [train|evaluate|predict|submit|serve|report|pack|export|demo] ...; with no arguments, this help.

  python -m finetune train --data DIR [--init pretrained:small | hf:DIR_OR_ID | ckpt:PATH | scratch]
                           [--members N | --folds K] [--probe] [--config YAML] key=value ...
  python -m finetune train --data A --data B ... [--test-corpus NAME|all] [--test-data C]
                           [--neutral-data READ_SPEECH]  (several corpora: the model that travels, scored
                           leave-one-corpus-out)
  python -m finetune evaluate [--ckpt RUN ...] --data DIR [--tta 0.9,1,1.1]
  python -m finetune predict [--ckpt RUN ...] FILES_OR_DIRS... [--out preds.csv] [--timeline DIR]
  python -m finetune submit [--ckpt RUN ...] --data COMPETITION_DIR --out DIR
  python -m finetune serve [--ckpt RUN ...] [--port 7860]      (the web app; pip install -e .[app])
  python -m finetune pack RUN --out DIR [--half]              (a run as a small folder to share)
  python -m finetune export --format onnx --out DIR [--ckpt RUN] [--int8]  (ONNX; pip install -e .[onnx])
  python -m finetune demo                                     (synthetic corpus + the default recipe, one seed)
Several --ckpt (run folders, checkpoints, ensemble parents or pretrained:NAME) are an ensemble:
probabilities averaged. evaluate, predict, submit and serve default to the shipped pretrained:emotion.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import typing
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import torch

from finetune.config import FinetuneConfig, resolve_run
from finetune.metrics import HEADLINE, classification_metrics, metrics_line
from finetune.outputs import check_output_file, check_run, prepare_run
from w2v2.checkpoint import NO_SPACE, atomic_write, describe_os_error
from w2v2.config import check_range, merge, parse_overrides
from w2v2.data.datasets import LAYOUTS, DatasetError, check_files, item_labels, labelled_test, load_dataset
from w2v2.data.labels import EMOTIONS
from w2v2.emotion.members import SHIPPED_CLASSIFIER, checkpoint_spec
from w2v2.training import Precision, resolve_device

DEMO_DATA, DEMO_RUN = Path("demo/data"), Path("demo/run")
FEW_CLIPS = 5  # a class with fewer training clips is warned about: the speaker splits may leave it out
PRECISION = "fp32"  # of evaluate/predict/submit/serve; docs/benchmark.md has bf16's measured differences


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m finetune", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_inference_parsers(sub)
    add_tool_parsers(sub)
    # parse_known_args: positionals may sit on both sides of options, which plain parse_args refuses
    args, rest = p.parse_known_args(argv)
    bad = [a for a in rest if a.startswith("-") or (args.command == "train" and "=" not in a)]
    if bad or (rest and args.command in ("evaluate", "submit", "report", "serve", "pack", "export", "demo")):
        p.error(f"unrecognized arguments: {' '.join(bad or rest)}")
    hop, window = getattr(args, "hop_seconds", None), getattr(args, "window_seconds", None)
    if args.command == "predict" and hop and window and hop > window:  # else against the model's (cmd_predict)
        p.error(f"--hop-seconds {args.hop_seconds} is longer than --window-seconds {args.window_seconds}: "
                "the windows would leave gaps")
    if getattr(args, "ckpt", "") is None:  # evaluate, predict, submit, serve: the shipped emotion model
        try:
            args.ckpt = [checkpoint_spec(SHIPPED_CLASSIFIER)]
        except ValueError as e:
            p.error(f"{e}: name a model with --ckpt")
    if args.command == "train":
        args.overrides += rest
    elif args.command == "predict":
        args.inputs += [Path(a) for a in rest]
    return args



def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """`train`: one corpus (the default recipe) or several (the model that travels)."""
    t = sub.add_parser("train", help="fine-tune an emotion classifier")
    t.add_argument("--data", action="append", help="dataset folder or CSV (layout detected); several --data "
                   "(or NAME=PATH) train the multi-corpus model that travels (docs/travel.md)")
    t.add_argument("--test-corpus", help="with several --data: hold this corpus out (or all, one at a time), "
                   "train on the others, score it (leave-one-corpus-out)")
    t.add_argument("--test-data", action="append", help="with several --data: a corpus only scored, never "
                   "trained on (repeatable)")
    t.add_argument("--neutral-data", action="append", help="with several --data: read speech of many voices "
                   "(a folder, manifest.tsv or CSV with path[,speaker]) learnt as neutral by the set heads, "
                   "weighing travel.neutral_weight of one corpus (repeatable; docs/travel.md)")
    t.add_argument("--layout", choices=LAYOUTS, help="force a dataset layout")
    t.add_argument("--init", help="scratch | pretrained:small | hf:DIR_OR_ID | ckpt:PATH (overrides the config's init)")
    t.add_argument("--config", help="YAML with differences from the defaults (default: the init's built-in recipe)")
    t.add_argument("--run", type=Path, help="run folder (default runs/finetune-<time>)")
    t.add_argument("--overwrite", action="store_true", help="replace an earlier run in the --run folder")
    t.add_argument("--resume", action="store_true", help="continue the killed run in --run after its last "
                   "completed epoch, with the settings it was started with (finished members are kept)")
    t.add_argument("--val-speakers", help="comma-separated speakers to validate on")
    t.add_argument("--members", type=count("--members", 1), help="seeds of the ensemble, each with its own "
                   "validation speakers and one model of every kind (a fine-tune, a probe, the tiny model "
                   "from scratch and descriptors heads; `kinds=[...]` chooses) (default 3; 1 for --init scratch)")
    t.add_argument("--folds", type=count("--folds", 2), help="K speaker-disjoint folds instead of seeds, each "
                   "validated on its K-th of the clips: out-of-fold metrics, ensemble submission")
    t.add_argument("--budget-minutes", type=minutes("--budget-minutes"), help="fit the recipe to this many "
                   "minutes of this machine's time (estimated from a few timed steps, which take under a minute "
                   "more): fewer seeds first, then fewer epochs")
    t.add_argument("--probe", action="store_true", help="members are linear probes of the frozen backbone of "
                   "--init only (no fine-tuning; cached features, the cheapest member)")
    t.add_argument("--skip-bad", action="store_true", help="continue without missing/unreadable files")
    t.add_argument("--dry-run", action="store_true", help="print the plan and its time estimate, train nothing")
    add_threads(t)
    t.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. epochs=5 batch_size=4")

def add_inference_parsers(sub: argparse._SubParsersAction) -> None:
    """`evaluate`, `predict`, `submit`, `serve`: the shipped model unless --ckpt names one."""
    e = sub.add_parser("evaluate", help="metrics of a fine-tuned model on a labelled dataset")
    add_ckpt(e, default=True)
    e.add_argument("--data", required=True, type=Path, help="labelled dataset folder or CSV (layout detected; "
                   "a competition folder's test set where it has test_labels.csv, else --data DIR/train.csv)")
    e.add_argument("--layout", choices=LAYOUTS, help="force a dataset layout")
    e.add_argument("--skip-bad", action="store_true", help="continue without missing/unreadable files")
    e.add_argument("--out", type=Path, help="write the metrics JSON here")
    add_normalise(e, speakers=True)
    add_tta(e)
    add_device(e)
    r = sub.add_parser("predict", help="emotion of each audio file (long files in windows)")
    add_ckpt(r, default=True)
    r.add_argument("inputs", nargs="+", type=Path, help="audio files or folders")
    r.add_argument("--out", type=Path, help="CSV of predictions (default: printed; past 20 rows the whole table also "
                   "goes to predictions.csv in the current folder, never overwriting one)")
    r.add_argument("--window-seconds", type=seconds("--window-seconds"),
                   help="long files are cut into windows this long, overlapping by half (default: the window the "
                   "model was trained with, 8 s for the shipped one)")
    r.add_argument("--hop-seconds", type=seconds("--hop-seconds"), help="window hop (default: half a window)")
    r.add_argument("--timeline", type=Path, metavar="DIR", help="per file, DIR/NAME.csv of each window's "
                   "probabilities (start_s,end_s,p_angry,...) and DIR/NAME.png, the six over time")
    add_normalise(r, speakers=False)
    add_tta(r)
    add_device(r)
    m = sub.add_parser("submit", help="submission.csv and test_probs.csv of a competition folder (ensembles too)")
    add_ckpt(m, default=True)
    m.add_argument("--data", required=True, type=Path, help="competition folder (test.csv, sample_submission.csv)")
    m.add_argument("--out", required=True, type=Path, help="folder for submission.csv and test_probs.csv")
    m.add_argument("--skip-bad", action="store_true", help="predict unreadable test files as silence")
    add_normalise(m, speakers=False)
    add_tta(m)
    add_device(m)
    v = sub.add_parser("serve", help="a local web page: upload or record audio, see its emotions (needs .[app])")
    add_ckpt(v, default=True)
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    v.add_argument("--port", type=count("--port", 1), default=7860)
    v.add_argument("--max-minutes", type=float, default=30.0, help="longest recording accepted (minutes)")
    v.add_argument("--concurrency", type=count("--concurrency", 1), default=2, help="recordings processed at once "
                   "(default 2, one thread each unless --threads: 2.2x the uploads per second of one at a time on "
                   "two threads, on a 2-core CPU; docs/app.md)")
    add_device(v)

def add_tool_parsers(sub: argparse._SubParsersAction) -> None:
    """`pack` and `report`: run folders as a small folder to share, or as a page."""
    k = sub.add_parser("pack", help="a run or ensemble as a small folder: only what differs from its init")
    k.add_argument("run", type=Path, help="fine-tuning run, checkpoint or ensemble parent")
    k.add_argument("--out", required=True, type=Path, help="the new folder")
    k.add_argument("--base", default="auto", help="auto (each member's init) | none | pretrained:NAME | ckpt:PATH")
    k.add_argument("--half", action="store_true", help="store the weights in fp16 (half the size)")
    x = sub.add_parser("export", help="a model or ensemble as ONNX, run by onnxruntime (pip install -e '.[onnx]')")
    x.add_argument("--format", choices=["onnx"], default="onnx", help="onnx (the only format)")
    x.add_argument("--out", required=True, type=Path, help="the new folder: use it as --ckpt DIR")
    x.add_argument("--int8", action="store_true", help="int8 weights for the matrix products (smaller, faster on "
                   "one thread; check its accuracy: docs/benchmark.md)")
    x.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    add_ckpt(x, default=True)
    add_threads(x)
    o = sub.add_parser("report", help="one HTML page that explains a run: metrics, figures, calibration")
    o.add_argument("run", type=Path, help="run folder: a model, a probe, a k-fold or ensemble parent")
    o.add_argument("--data", type=Path, help="the dataset, where it moved since training (test labels, audio)")
    o.add_argument("--out", type=Path, help="the HTML page (default RUN/report.html)")
    add_threads(o)
    about = (f"a synthetic corpus in {DEMO_DATA} and the default recipe with one seed on it, in {DEMO_RUN} "
             "(a few minutes; make demo)")
    d = sub.add_parser("demo", help=about, description=about)
    add_threads(d)

def add_ckpt(p: argparse.ArgumentParser, default: bool = False) -> None:
    p.add_argument("--ckpt", required=not default, type=checkpoint_arg, action="append",
                   help="run folder, its best/ checkpoint, an ensemble parent, a folder `export` wrote (ONNX) or "
                   "pretrained:NAME; repeat for an "
                   f"ensemble{f' (default {SHIPPED_CLASSIFIER}, the shipped emotion model)' if default else ''}")


def checkpoint_arg(text: str) -> Path:
    try:
        return checkpoint_spec(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (a GPU where there is one) | cpu | cuda | cuda:N")
    add_threads(p)
    p.add_argument("--precision", choices=typing.get_args(Precision), default=PRECISION,
                   help=f"arithmetic of prediction (default {PRECISION}): bf16 where the device computes it "
                   "natively (a recent GPU; a CPU with AVX512-BF16 or AMX), auto picks bf16 where it is")


def add_normalise(p: argparse.ArgumentParser, speakers: bool) -> None:
    choices = ["speaker", "set", "clip"] if speakers else ["set", "clip"]
    p.add_argument("--normalise", choices=choices, default=choices[0], help="how the travelling model standardises "
                   + ("per speaker where the data names speakers (each speaker's statistics shrunk toward the "
                      "set's), else " if speakers else "")
                   + "the clips of one call together as a recording set (set: 10 or more recordings with speech), "
                   f"or each clip alone (clip); default {choices[0]}: docs/travel.md")


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=count("--threads", 1), help="CPU threads (default: torch's, all cores)")


def add_tta(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tta", type=tta_speeds, default=(), metavar="SPEEDS",
                   help="test-time augmentation: also predict each window at these speeds, e.g. 0.9,1,1.1")


def seconds(flag: str) -> Callable[[str], float]:
    """A duration option, held to the range of the window_seconds config field (the CNN's 25 ms and up)."""
    def parse(text: str) -> float:
        try:
            return check_range(FinetuneConfig, "window_seconds", float(text), flag)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def tta_speeds(text: str) -> tuple[float, ...]:
    """--tta 0.9,1,1.1 -> (0.9, 1.0, 1.1), held to the range of the tta config field."""
    try:
        return check_range(FinetuneConfig, "tta", tuple(float(v) for v in text.split(",")), "--tta")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def minutes(flag: str) -> Callable[[str], float]:
    """A positive number of minutes."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{flag} {text}: give a number of minutes above 0")
        return value
    return parse


def count(flag: str, least: int) -> Callable[[str], int]:
    """A whole-number option of at least `least`."""
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < least:
            raise argparse.ArgumentTypeError(f"{flag} {text}: give a whole number, at least {least}")
        return int(text)
    return parse


def listed_or_stop(header: str, lines: list[str], skip_bad: bool) -> None:
    """The bad files under `header` (the first 20), then stop unless --skip-bad."""
    print(header, file=sys.stderr)
    for line in lines[:20]:
        print(f"  {line}", file=sys.stderr)
    if len(lines) > 20:
        print(f"  ... and {len(lines) - 20} more", file=sys.stderr)
    if not skip_bad:
        raise SystemExit("stopping: fix or remove them, or pass --skip-bad to continue without them")


def checked(items: list, skip_bad: bool, what: str) -> list:
    """Missing/unreadable files listed up front; stop unless --skip-bad."""
    good, bad = check_files(items)
    if bad:
        listed_or_stop(f"{len(bad)} of {len(items)} {what} files are missing or unreadable:",
                       [f"{item.path}: {problem}" for item, problem in bad], skip_bad)
        print(f"--skip-bad: continuing with {len(good)} files", file=sys.stderr)
    return good


def decoded(items: list, skip_bad: bool, what: str) -> tuple[list, list[int]]:
    """(each clip decoded: one second of silence where it cannot be; the indices of those). A file whose header
    reads but whose audio does not (a damaged body) is found only here: listed, and stop unless --skip-bad,
    as `checked` does for the rest, before anything is predicted or written."""
    from w2v2.emotion.windows import AudioCache, cached_waves

    cache = AudioCache(items)
    waves = cached_waves(cache, len(items))
    bad = [i for i in range(len(items)) if cache[i] is None]
    if bad:
        listed_or_stop(f"{len(bad)} of {len(items)} {what} files could not be decoded (see the warnings above):",
                       [str(items[i].path) for i in bad], skip_bad)
    return waves, bad


def cmd_train(args: argparse.Namespace) -> dict:
    from finetune.model import check_model
    from finetune.recipe import train_recipe

    flags = [f"init={args.init}"] if args.init else []
    flags += [f"members={args.members}"] if args.members else []
    flags += [f"folds={args.folds}"] if args.folds else []
    flags += ["kinds=[probe]"] if args.probe else []
    flags += [f"budget_minutes={args.budget_minutes}"] if args.budget_minutes is not None else []
    flags += [f"threads={args.threads}"] if args.threads else []
    if args.data and len(args.data) > 1 or args.test_corpus or args.test_data or args.neutral_data:
        return cmd_train_travel(args)
    if args.resume:
        cfg, data_path, layout, val_speakers = resumed(args, flags)
    else:
        if args.data is None:
            raise SystemExit("error: train needs --data DIR (or --resume --run RUN to continue a killed run)")
        cfg = resolve_run(args.config, flags + list(args.overrides))
        check_model(cfg)  # a bad model.* override fails before the run folder is touched
        data_path, layout = Path(args.data[0]), args.layout
        val_speakers = args.val_speakers.split(",") if args.val_speakers else None
    run = args.run or Path("runs") / time.strftime("finetune-%Y%m%d-%H%M%S")
    args.run = run  # named, so that an interrupted run can say how to resume it
    if not args.resume:  # refused before any work; a dry run checks the folder as the run would, touching nothing
        check_run(run, args.overwrite)
    data = load_dataset(data_path, layout)
    if not data.train:
        missing = " (no train.csv)" if data.layout == "competition" and not (data.root / "train.csv").exists() else ""
        raise DatasetError(f"{data_path}: no labelled clips to train on{missing}")
    data.train = checked(data.train, args.skip_bad, "training")
    emotions = sorted({it.label for it in data.train if it.label is not None})
    if len(emotions) == 1:
        warnings.warn(f"{data_path}: every training clip is labelled {EMOTIONS[emotions[0]]}: the model can only "
                      "learn to predict that one emotion", stacklevel=1)
    counts = Counter(it.label for it in data.train if it.label is not None)
    if rare := [f"{EMOTIONS[k]} ({n})" for k, n in sorted(counts.items()) if n < FEW_CLIPS]:
        warnings.warn(f"{data_path}: few clips of {', '.join(rare)}: a seed whose validation speakers hold them "
                      "trains without them, and one whose speakers lack them cannot measure them", stacklevel=1)
    if data.test and len(checked(data.test, args.skip_bad, "test")) < len(data.test):
        # the submission needs a row for every id: unreadable clips keep theirs, predicted from silence
        print("--skip-bad: their submission rows hold the prediction for silence", file=sys.stderr)
    if args.dry_run:
        from finetune.recipe import dry_run

        dry_run(data, cfg, val_speakers)
        return {}
    if not args.resume:  # only now, with the data read and checked, does --overwrite remove an earlier run
        prepare_run(run, args.overwrite)
    result = train_recipe(data, cfg, run, val_speakers, resume=args.resume)
    # the files this run wrote (a descriptors head draws no learning curves)
    written = [n for n in ("confusion_matrix.png", "curves.png", "val_probs.csv", "best/") if (run / n).exists()]
    report(result, run, "member folders, test_probs.csv" if "members" in result else ", ".join(written))
    return result


def cmd_train_travel(args: argparse.Namespace) -> dict:
    """Several --data: the travelling model (finetune.travel), with travel.KEY=VALUE overrides."""
    from finetune.travel import train_travel
    from w2v2.emotion.travel import TravelConfig

    if not args.data or len(args.data) < 2:
        given = "--test-corpus" if args.test_corpus else "--test-data" if args.test_data else "--neutral-data"
        raise SystemExit(f"error: {given} belongs to the travelling model, trained on several corpora: give two or "
                         "more --data")
    if args.resume or args.init or args.probe or args.folds or args.budget_minutes or args.val_speakers:
        raise SystemExit("error: several --data train the travelling model, which takes --run, --test-corpus, "
                         "--members (seeds of the held-out scores) and travel.KEY=VALUE only")
    if bad := [kv for kv in args.overrides if not kv.startswith("travel.")]:
        raise SystemExit(f"error: {bad[0]}: with several --data the settings are travel.KEY=VALUE, KEY one of "
                         f"{', '.join(f.name for f in fields(TravelConfig))}")
    try:  # the project's typed, range-checked overrides (unknown keys are errors)
        cfg = merge(TravelConfig(), parse_overrides(args.overrides).get("travel", {}), prefix="travel.")
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    run = args.run or Path("runs") / time.strftime("travel-%Y%m%d-%H%M%S")
    return train_travel(args.data, run, args.test_corpus, cfg, seeds=args.members or 3, layout=args.layout,
                        test_specs=args.test_data, skip_bad=args.skip_bad, dry_run=args.dry_run,
                        overwrite=args.overwrite, neutral_specs=args.neutral_data)


def resumed(args: argparse.Namespace, flags: list[str]) -> tuple[FinetuneConfig, Path, str | None, list[str] | None]:
    """(config, data, layout, validation speakers) of the killed run `--resume --run RUN` continues: the
    ones its recipe.json saved (--data and --layout may say where the data moved)."""
    from finetune.recipe import read_recipe
    from w2v2.config import from_dict

    if args.run is None:
        raise SystemExit("error: --resume continues a killed run: give its folder with --run")
    if args.overwrite:
        raise SystemExit("error: --resume continues the run in --run, --overwrite starts it afresh: choose one")
    if flags or args.overrides or args.config or args.val_speakers:
        raise SystemExit("error: --resume continues the run with the settings it was started with (its "
                         f"recipe.json); drop {' '.join(flags + list(args.overrides)) or '--config/--val-speakers'}")
    if (args.run / "metrics.json").is_file():
        raise SystemExit(f"error: --resume: {args.run} is a finished run (metrics.json): nothing to resume")
    saved = read_recipe(args.run)
    return (from_dict(FinetuneConfig, saved["config"]), Path(args.data[0]) if args.data else Path(saved["data"]),
            args.layout or saved["layout"], saved["val_speakers"])


def report(result: dict, run: Path, files: str) -> None:
    for split, name in (("validation", "validation"), ("oof", "out-of-fold"), ("test", "test")):
        if split in result:
            seeds = " (each seed's ensemble on its own clips)" if "validation_seeds" in result else ""
            seeds = seeds if split == "validation" else ""
            print(f"{name:>11}: {metrics_line(result[split])}{seeds}")
    print(f"run folder: {run}  (metrics.json, {files})")
    if "submission" in result:
        print(f"submission: {result['submission']} (probabilities: test_probs.csv)")


def cmd_evaluate(args: argparse.Namespace) -> dict:
    """Metrics of one model or an ensemble (each network with the window it was trained with), the clips taken
    as one recording set (per speaker where the dataset names speakers)."""
    from finetune.predict import normalisation_line
    from w2v2.emotion.recognizer import EmotionRecognizer

    recognizer = EmotionRecognizer.from_pretrained(args.ckpt, args.device, args.precision, keep_loaded=False)
    data = load_dataset(args.data, args.layout)
    if args.out:  # neither the --data CSV nor a clip nor inside a model folder
        check_output_file(args.out, "--out", [args.data, *(it.path for it in data.train + data.test)], args.ckpt)
    if data.layout == "competition" and not data.test_labels:
        # its labelled clips are train.csv's, what the model was trained on: such scores mean nothing
        raise DatasetError(f"{args.data}: no test labels (test_labels.csv) to score the model on; train.csv's "
                           f"clips are the training data. To score them anyway: --data {args.data / 'train.csv'}")
    # a competition folder that ships test labels: score the (labelled) test set
    items = labelled_test(data) if data.layout == "competition" else data.train
    items = checked(items, args.skip_bad, "evaluation")
    waves, bad = decoded(items, args.skip_bad, "evaluation")
    if bad:  # --skip-bad: scored without them, as the files whose headers could not be read
        kept = [i for i in range(len(items)) if i not in set(bad)]
        items, waves = [items[i] for i in kept], [waves[i] for i in kept]
        print(f"--skip-bad: continuing with {len(items)} files", file=sys.stderr)
    if not items:
        raise DatasetError(f"{args.data}: no clips to evaluate" + (" (none could be read)" if args.skip_bad else ""))
    # as `predict` answers them: a clip without speech is still scored, but stays out of the set's statistics
    probs, per_member, plan = recognizer.clip_scores(waves, args.tta, args.normalise, [it.speaker for it in items],
                                                     progress=True)
    if plan is not None:
        print(normalisation_line(plan, args.normalise))
    labels = item_labels(items)
    metrics = classification_metrics(labels, probs.argmax(-1).tolist())
    if len(recognizer.members) > 1:
        scores = [classification_metrics(labels, p.argmax(-1).tolist()) for p in per_member]
        for member, m in zip(recognizer.members, scores, strict=True):
            print(f"{member.name:>40}: {metrics_line(m)}")
        metrics["members"] = [{"ckpt": member.name, **{k: m[k] for k in HEADLINE}}
                              for member, m in zip(recognizer.members, scores, strict=True)]
        weighted = "" if bool((recognizer.weights == recognizer.weights[0]).all()) else ", kinds weighted"
        print(f"{f'ensemble of {len(recognizer.members)}{weighted}':>40}: ", end="")
    classes = sorted(set(labels))
    if len(classes) < len(EMOTIONS) and len(recognizer.members) == 1:
        print("six-way answers: ", end="")
    print(metrics_line(metrics))
    if len(classes) < len(EMOTIONS):  # a corpus with fewer classes is also scored as its own task
        own = probs[:, classes].argmax(-1).tolist()
        metrics["own_classes"] = classification_metrics(labels, [classes[i] for i in own])
        print(f"{'over its ' + str(len(classes)) + ' classes':>40}: " if len(recognizer.members) > 1
              else f"over its {len(classes)} classes ({', '.join(EMOTIONS[c] for c in classes)}): ", end="")
        print(metrics_line(metrics["own_classes"]))
    final = metrics.get("own_classes", metrics)
    which = f", over its {len(classes)} classes" if "own_classes" in metrics else ""
    print(f"recall per class{which}: " + "  ".join(f"{name} {r:.2f}" for name, r in final["per_class_recall"].items()
                                                   if r is not None))
    if args.out:
        atomic_write(args.out, lambda tmp: tmp.write_text(json.dumps(metrics, indent=2)))
    return metrics


def cmd_submit(args: argparse.Namespace) -> dict:
    """submission.csv and test_probs.csv of a competition folder from one model or an ensemble, the test clips
    taken as one recording set."""
    from finetune.outputs import write_test_outputs
    from finetune.predict import normalisation_line
    from w2v2.emotion.recognizer import EmotionRecognizer

    recognizer = EmotionRecognizer.from_pretrained(args.ckpt, args.device, args.precision, keep_loaded=False)
    data = load_dataset(args.data, "competition")
    clips = [it.path for it in data.train + data.test]
    for name in ("submission.csv", "test_probs.csv", "confusion_matrix_test.png"):  # write_test_outputs' files
        check_output_file(args.out / name, "--out", clips, args.ckpt)
    if not data.test:
        raise DatasetError(f"{args.data}: test.csv lists no clips: nothing to submit")
    unreadable = len(checked(data.test, args.skip_bad, "test")) < len(data.test)
    waves, bad = decoded(data.test, args.skip_bad, "test")
    if unreadable or bad:
        print("--skip-bad: read as silence, they hold no evidence: 1/6 for each emotion (their submission rows: "
              "label 0, the first of six equal)", file=sys.stderr)
    probs, _, plan = recognizer.clip_scores(waves, args.tta, args.normalise, None, progress=True)  # as `predict`
    if plan is not None:
        print(normalisation_line(plan, args.normalise))
    result = write_test_outputs(args.out, data, probs)
    if "test" in result:
        print(f"test: {metrics_line(result['test'])}")
    print(f"submission: {result['submission']} (probabilities: {args.out / 'test_probs.csv'}; "
          f"{len(recognizer.members)} model(s){', TTA ' + ','.join(map(str, args.tta)) if args.tta else ''})")
    return result


def cmd_pack(args: argparse.Namespace) -> None:
    from finetune.pack import folder_mb, pack

    written = pack(args.run, args.out, None if args.base == "none" else args.base, args.half)
    print(f"packed {len(written)} checkpoint(s) into {args.out} ({folder_mb(args.out):.1f} MB); use it as "
          f"--ckpt {args.out}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    warnings.simplefilter("once", UserWarning)  # ours once each; libraries' resource and deprecation notes stay
    warnings.formatwarning = plain_warning  # a user reads "warning: PATH: problem", not our source line
    if not argv:  # a newcomer typing the bare command wants to see what it does, not minutes of training
        print(__doc__)
        return None
    args = parse_args(argv)
    if getattr(args, "threads", None):  # every command the same way (train also records it as threads=N)
        torch.set_num_threads(args.threads)
    try:
        if args.command == "train":
            cmd_train(args)
        elif args.command == "demo":
            demo(args.threads)
        elif args.command == "evaluate":
            cmd_evaluate(args)
        elif args.command == "submit":
            cmd_submit(args)
        elif args.command == "pack":
            cmd_pack(args)
        elif args.command == "export":
            from finetune.export import cmd_export

            if len(args.ckpt) != 1:
                raise ValueError("export takes one --ckpt (a model, an ensemble parent or pretrained:NAME)")
            cmd_export(args.ckpt[0], args.out, args.int8, args.overwrite)
        elif args.command == "serve":
            from finetune.app import serve

            if not args.threads:  # requests run side by side: one thread each beat two threads shared (docs/app.md)
                torch.set_num_threads(1)
            serve(args.ckpt, args.host, args.port, args.max_minutes, resolve_device(args.device), args.precision,
                  concurrency=args.concurrency)
        elif args.command == "report":
            from finetune.report import write_report

            print(f"report: {write_report(args.run, args.out, args.data)}")
        else:
            from finetune.predict import cmd_predict

            cmd_predict(args)
    except (DatasetError, FileNotFoundError, ValueError, ImportError) as e:  # ImportError: an optional extra
        raise SystemExit(f"error: {e}") from None
    except KeyboardInterrupt:  # Ctrl-C: one line, and how to go on (every finished epoch is on disk)
        resume = (f": `python -m finetune train --resume --run {args.run}` continues the run after its last "
                  "finished epoch" if args.command == "train" and getattr(args, "run", None) else "")
        raise SystemExit(f"interrupted{resume}") from None
    except OSError as e:  # a full disk, a read-only folder: one sentence (models are written atomically)
        resume = (f"; then `python -m finetune train --resume --run {args.run}` continues the run"
                  if args.command == "train" and getattr(args, "run", None) and e.errno in NO_SPACE else "")
        raise SystemExit(f"error: {describe_os_error(e)}{resume}") from None


def plain_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  line: str | None = None) -> str:
    return f"warning: {message}\n"


def demo(threads: int | None = None) -> None:
    from w2v2.synth import generate_corpus

    start = time.perf_counter()
    if not (DEMO_DATA / "train.csv").is_file():
        print(f"generating the synthetic emotional-speech corpus in {DEMO_DATA} ...")
        generate_corpus(DEMO_DATA, clips=600, seed=0)
    print("the default recipe with one seed (--members 1): pretrained:small fine-tuned and probed, the tiny model "
          "from scratch (30 epochs here instead of 80, to stay within a few minutes) and descriptors heads, the four "
          "weighted as they predicted the seed's validation speakers ...")
    main(["train", "--data", str(DEMO_DATA), "--run", str(DEMO_RUN), "--members", "1", "--overwrite",
          "scratch.epochs=30", "scratch.patience=10", *([f"threads={threads}"] if threads else [])])
    print(f"demo finished in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
