"""What the default recipe costs, kind by kind: `python -m finetune.cost [--clips N] [--kinds ...]`.

A fixed synthetic corpus (`w2v2.synth`, the same clips for a given --clips and --seed) is trained on with
the default recipe's settings, one seed, one kind at a time (`kinds=[finetune]`, `[probe]`, `[scratch]`,
`[descriptors]`), on --threads threads. Each row: the kind's CPU-seconds (this process's user + system time,
every thread) and wall-seconds, both per hour of training audio, and the recipe's own estimate for it. Then the
default recipe, 3 seeds of every kind, as the sum of its members, and with --whole as one command
(members side by side: wall time below the sum). Nothing is timed in a test:
the figures in docs/benchmark.md come from this command's output (experiments/results/cost.txt).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import resource
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from finetune.__main__ import main as finetune
from finetune.recipe import audio_hours
from w2v2.data.datasets import load_dataset
from w2v2.synth import generate_corpus

KINDS = ("finetune", "probe", "scratch", "descriptors")
SEEDS = 3  # the default recipe's


def training_hours(corpus: Path) -> float:
    hours = audio_hours(load_dataset(corpus).train)
    assert hours is not None, f"{corpus}: a clip's length is unknown"  # the synthetic corpus's WAVs have headers
    return hours


def cpu_seconds() -> float:
    """User + system seconds of this process and of its finished children (the recipe's workers)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                   resource.getrusage(resource.RUSAGE_CHILDREN)))


def run_kind(corpus: Path, run: Path, kind: str | None, threads: int, extra: list[str]) -> dict[str, float]:
    """CPU- and wall-seconds of one seed of `kind` (None: the whole default recipe, 3 seeds), and the
    estimate its plan printed (seconds)."""
    out = io.StringIO()
    cpu, wall = cpu_seconds(), time.perf_counter()
    which = ["--members", "1", f"kinds=[{kind}]"] if kind else []
    with contextlib.redirect_stdout(out):
        finetune(["train", "--data", str(corpus), "--run", str(run), *which, f"threads={threads}", *extra])
    cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
    said = re.search(r"estimate: ([\d.]+) min", out.getvalue())
    metrics = pd.read_json(run / "metrics.json", typ="series")
    return {"cpu": cpu, "wall": wall, "estimate": float(said.group(1)) * 60 if said else float("nan"),
            "uar": float(metrics["validation"]["uar"])}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m finetune.cost", description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=200, help="clips of the synthetic corpus (default 200)")
    p.add_argument("--seed", type=int, default=0, help="the corpus's seed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    p.add_argument("--whole", action="store_true", help="also train the whole default recipe (3 seeds) once, "
                   "as the plain command does (members side by side where there are cores)")
    p.add_argument("--work", type=Path, help="where the corpus and runs go (default a temporary folder)")
    p.add_argument("overrides", nargs="*", help="key=value settings for every kind (e.g. epochs=6)")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="w2v2-cost-"))
    corpus = work / f"synth-{args.clips}-{args.seed}"
    if not (corpus / "train.csv").is_file():
        with contextlib.redirect_stdout(io.StringIO()):
            generate_corpus(corpus, clips=args.clips, speakers=8, seed=args.seed)
    hours = training_hours(corpus)
    print(f"synthetic corpus: {args.clips} clips (seed {args.seed}), {hours * 60:.1f} min of training audio; "
          f"{args.threads} thread(s); {' '.join(args.overrides) or 'default settings'}")
    print("| kind (one seed) | CPU-s | wall-s | CPU-min per hour of audio | wall-min per hour | estimate-s | "
          "validation UAR |")
    print("|---|---|---|---|---|---|---|")
    rows = {}
    for kind in args.kinds:
        run = work / f"run-{kind}"
        shutil.rmtree(run, ignore_errors=True)
        r = rows[kind] = run_kind(corpus, run, kind, args.threads, args.overrides)
        print(f"| {kind} | {r['cpu']:.0f} | {r['wall']:.0f} | {r['cpu'] / 60 / hours:.1f} | "
              f"{r['wall'] / 60 / hours:.1f} | {r['estimate']:.0f} | {r['uar']:.3f} |", flush=True)
    cpu, wall = sum(r["cpu"] for r in rows.values()) * SEEDS, sum(r["wall"] for r in rows.values()) * SEEDS
    print(f"| the recipe: {SEEDS} seeds × ({' + '.join(rows)}) | {cpu:.0f} | {wall:.0f} | "
          f"{cpu / 60 / hours:.1f} | {wall / 60 / hours:.1f} | | |")
    if args.whole:
        run = work / "run-whole"
        shutil.rmtree(run, ignore_errors=True)
        r = run_kind(corpus, run, None, args.threads, args.overrides)
        print(f"| the recipe as one command (threads={args.threads}, {' '.join(args.overrides) or 'workers=0'}) | "
              f"{r['cpu']:.0f} | {r['wall']:.0f} | {r['cpu'] / 60 / hours:.1f} | {r['wall'] / 60 / hours:.1f} | "
              f"{r['estimate']:.0f} | {r['uar']:.3f} |", flush=True)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
