"""python -m finetune.compare: does the pretrained checkpoint make the emotion model better?

The SUPERB / EmoBox protocol on a labelled dataset with speakers, test speakers never seen:
  probe     frozen backbone, softmax-weighted sum of every layer, mean pooling, linear classifier;
  finetune  the whole model trained by `finetune.train` (the recipe in --config and key=value overrides),
each from the given checkpoint (--init) and from random weights of exactly the same architecture,
over several seeds. Prints a table of test accuracy / UAR / macro-F1 (mean ± sd) and one JSON line.

  python -m finetune.compare --data ../shared/data/ravdess-16k --test-speakers 19-24 --init pretrained:small
  python -m finetune.compare --data demo/data --init pretrained:small      # competition folder + test_labels.csv

Each (mode, init, seed) result is stored in the run folder as it finishes, so a killed comparison
continues where it stopped. The probe caches each clip's per-layer mean vectors once per backbone
(mean pooling is linear, so the weighted layer sum of pooled vectors equals pooling the weighted sum)
and trains the head on them; its inputs are standardised with training-set statistics.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from finetune.config import DEFAULT_HEAD, resolve_run
from finetune.metrics import HEADLINE, classification_metrics, metrics_line
from finetune.model import build_classifier
from finetune.probe import fit_head, pooled_logits
from finetune.train import train
from w2v2.config import to_dict
from w2v2.data.datasets import Dataset, Item, item_labels, load_dataset, speaker_split
from w2v2.emotion.windows import layer_means
from w2v2.heads import ClassificationHead
from w2v2.training import resolve_device
from w2v2.training.cli import deep_merge, parse_with_overrides
from w2v2.training.runs import init_config


def parse_speakers(text: str) -> set[str]:
    """'19-24' or '19,20,21' -> {'19', ..., '24'}."""
    out: set[str] = set()
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        out |= {str(s) for s in range(int(lo), int(hi) + 1)} if sep else {lo}
    return out


def split_test(data: Dataset, test_speakers: set[str] | None) -> tuple[list[Item], list[Item]]:
    """(training items, labelled test items): the given speakers held out, or a competition test set."""
    if test_speakers:
        known = {str(it.speaker) for it in data.train}
        if not test_speakers <= known:
            raise ValueError(f"--test-speakers {sorted(test_speakers - known)} not in the data; known: {sorted(known)}")
        return ([it for it in data.train if str(it.speaker) not in test_speakers],
                [it for it in data.train if str(it.speaker) in test_speakers])
    if data.test and data.test_labels:
        return data.train, [replace(t, label=data.test_labels[t.id]) for t in data.test]
    raise ValueError(f"{data.root}: give --test-speakers, or a competition folder with test_labels.csv")


def fit_and_score_head(x: dict[str, torch.Tensor], y: dict[str, torch.Tensor], seed: int, epochs: int,
                       lr: float) -> dict[str, dict]:
    """`finetune.probe.fit_head` of a standardising DEFAULT_HEAD on cached (n, layers+1, d) vectors (the
    epoch with the best validation UAR kept). Returns validation and test metrics."""
    torch.manual_seed(seed)  # the head's initialisation
    head = ClassificationHead(replace(DEFAULT_HEAD, standardize=True), x["train"].shape[-1], x["train"].shape[1])
    fit_head(head, x, y, seed, epochs, lr)
    with torch.no_grad():
        return {split: classification_metrics(y[split].tolist(), pooled_logits(head, x[split]).argmax(-1).tolist())
                for split in ("val", "test")}


def run_probe(args: argparse.Namespace, arm: str, seed: int, splits: dict[str, list[Item]],
              features: dict) -> dict:
    cfg = finetune_config(args, arm, seed)
    key = "pretrained" if arm == "pretrained" else f"random-{seed}"  # pretrained features: once for all seeds
    if key not in features:
        model = build_classifier(cfg).to(resolve_device(cfg.device))
        features[key] = {s: layer_means(model, items, cfg.window_seconds) for s, items in splits.items()}
    y = {s: torch.tensor([it.label for it in items]) for s, items in splits.items()}
    result = fit_and_score_head(features[key], y, seed, args.probe_epochs, args.probe_lr)
    return {"test": result["test"], "validation": result["val"]}


def finetune_config(args: argparse.Namespace, arm: str, seed: int):
    """The fine-tuning config of one arm: the checkpoint, or random weights of its exact architecture."""
    if arm == "pretrained":
        return resolve_run(args.config, [*args.overrides, f"init={args.init}", f"seed={seed}"])
    cfg = resolve_run(args.config, [*args.overrides, "init=scratch", f"seed={seed}"])
    return replace(cfg, model=deep_merge(to_dict(init_config(args.init)), cfg.model))  # + fine-tuning's dropout etc.


def run_finetune(args: argparse.Namespace, arm: str, seed: int, train_items: list[Item], test_items: list[Item],
                 data: Dataset, folder: Path) -> dict:
    cfg = finetune_config(args, arm, seed)
    # train() splits off the same validation clips as the probe: speaker_split, same items, fraction, seed
    test_labels = dict(zip([it.id for it in test_items], item_labels(test_items), strict=True))
    subset = Dataset(data.layout, data.root, train_items, test_items, None, test_labels)
    shutil.rmtree(folder, ignore_errors=True)  # a run killed before it reached results.json starts over
    result = train(subset, cfg, folder)
    return {"test": result["test"], "validation": result["validation"], "train_seconds": result["train_seconds"]}


def summarize(results: dict[str, dict]) -> list[dict]:
    """One row per (mode, arm): mean and sd of each test metric over seeds."""
    rows = []
    pairs = {tuple(k.split("/")[:2]) for k in results}
    for mode, arm in sorted(pairs, key=lambda r: (r[0] != "probe", r[1] != "pretrained")):
        runs = [v for k, v in results.items() if k.startswith(f"{mode}/{arm}/")]
        row = {"mode": mode, "init": arm, "seeds": len(runs)}
        for m in HEADLINE:
            vals = [r["test"][m] for r in runs]
            row[m] = statistics.mean(vals)
            row[m + "_sd"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        row["seconds"] = statistics.mean(r["seconds"] for r in runs)
        rows.append(row)
    return rows


def print_table(rows: list[dict], init: str) -> None:
    print("\n| mode | init | seeds | accuracy | UAR | macro-F1 | s per run |\n|---|---|---|---|---|---|---|")
    for r in rows:
        name = init if r["init"] == "pretrained" else "random weights"
        cells = " | ".join(f"{r[m]:.3f} ± {r[m + '_sd']:.3f}" for m in HEADLINE)
        print(f"| {r['mode']} | {name} | {r['seeds']} | {cells} | {r['seconds']:.0f} |")
    by = {(r["mode"], r["init"]): r for r in rows}
    for mode in ("probe", "finetune"):
        if (mode, "pretrained") in by and (mode, "random") in by:
            gain = by[(mode, "pretrained")]["uar"] - by[(mode, "random")]["uar"]
            print(f"{mode}: pretrained - random = {gain:+.3f} UAR")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m finetune.compare", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path, help="labelled dataset (any layout finetune reads)")
    p.add_argument("--layout", help="force a dataset layout")
    p.add_argument("--test-speakers", help="held-out test speakers, e.g. 19-24 or 1,5,9")
    p.add_argument("--init", default="pretrained:small", help="the checkpoint to judge (pretrained:NAME, ckpt:, hf:)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--modes", nargs="+", choices=("probe", "finetune"), default=["probe", "finetune"])
    p.add_argument("--config", default="configs/finetune/small.yaml", help="fine-tuning recipe (both arms)")
    p.add_argument("--run", type=Path, default=Path("runs/compare"), help="results and fine-tuning runs")
    p.add_argument("--probe-epochs", type=int, default=60)
    p.add_argument("--probe-lr", type=float, default=1e-3)
    p.add_argument("overrides", nargs="*", help="key=value fine-tuning overrides (both arms), e.g. epochs=10")
    return parse_with_overrides(p, argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    data = load_dataset(args.data, args.layout)
    train_items, test_items = split_test(data, parse_speakers(args.test_speakers) if args.test_speakers else None)
    base = resolve_run(args.config, args.overrides)
    if base.threads:
        torch.set_num_threads(base.threads)
    args.run.mkdir(parents=True, exist_ok=True)
    store = args.run / "results.json"
    results = json.loads(store.read_text()) if store.is_file() else {}
    features: dict = {}
    test_speakers = len({it.speaker for it in test_items} - {None})
    print(f"{len(train_items)} training clips, {len(test_items)} test clips "
          f"({f'{test_speakers} test speakers' if test_speakers else 'test speakers not listed'}); "
          f"{args.init} vs random weights")
    for mode in args.modes:
        for seed in range(args.seeds):
            train_part, val_part = speaker_split(train_items, base.val_fraction, seed)
            splits = {"train": train_part, "val": val_part, "test": test_items}
            for arm in ("pretrained", "random"):
                key = f"{mode}/{arm}/{seed}"
                if key in results:
                    continue
                start = time.perf_counter()
                if mode == "probe":
                    res = run_probe(args, arm, seed, splits, features)
                else:
                    res = run_finetune(args, arm, seed, train_items, test_items, data,
                                       args.run / f"finetune-{arm}-seed{seed}")
                res["seconds"] = time.perf_counter() - start
                results[key] = res
                store.write_text(json.dumps(results, indent=1))
                took = f"{res['seconds']:.0f} s"
                print(f"{key}: test {metrics_line(res['test'], took)}", flush=True)
    rows = summarize({k: v for k, v in results.items() if k.split("/")[0] in args.modes})
    print_table(rows, args.init)
    print(json.dumps({"data": str(args.data), "init": args.init, "rows": rows}))
    return rows


if __name__ == "__main__":
    main()
