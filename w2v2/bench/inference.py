"""Inference throughput and agreement by runtime: `python -m w2v2.bench.inference [--ckpt X] [--data DIR]`.

PyTorch fp32 (members that share a CNN run as one, `w2v2.emotion.shared`, and apart, as before), PyTorch bf16
(where this CPU computes it natively), ONNX fp32 and ONNX int8 (onnxruntime, the `.[onnx]` extra; shared
parts in one graph), at 1 and 2 threads, on the same clips on the same machine; each row the median of
`--rounds` timed passes after one warm-up pass, the runtimes taking turns round by round (this machine's speed
drifts by 10-20% between minutes: interleaved, the ratios stay comparable). Throughput is audio seconds per
second of the whole prediction path (decoded clips -> windows -> every member -> probabilities). Agreement is against
PyTorch fp32 on the same clips: max |Δp| of the clip probabilities, the share of clips whose label
changed and, where the clips are labelled, UAR. The exports are written once into `--work`.

The figures in docs/benchmark.md come from this command's output (experiments/results/inference.txt).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from w2v2.data.audio import load_audio
from w2v2.data.datasets import load_dataset
from w2v2.emotion.exported import export_model
from w2v2.emotion.members import checkpoint_spec
from w2v2.emotion.recognizer import EmotionRecognizer
from w2v2.training import native_bf16


def uar(labels: list[int], preds: np.ndarray) -> float:
    labels_a = np.asarray(labels)
    return float(np.mean([(preds[labels_a == c] == c).mean() for c in np.unique(labels_a)]))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m w2v2.bench.inference", description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", default="pretrained:emotion-ravdess", help="a network or ensemble (default the "
                   "9-member RAVDESS ensemble)")
    p.add_argument("--data", type=Path, help="labelled clips to time and score (any layout); default: synthetic")
    p.add_argument("--clips", type=int, default=60, help="clips taken from --data (every k-th, default 60)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--work", type=Path, default=Path("runs/bench-inference"), help="where the exports go")
    args = p.parse_args(argv)
    source = checkpoint_spec(args.ckpt)
    if args.data:
        items = load_dataset(args.data).train
        items = items[:: max(1, len(items) // args.clips)][: args.clips]
        waves, labels = [load_audio(it.path) for it in items], [int(it.label) for it in items]  # type: ignore[arg-type]
    else:
        from w2v2.emotion.exported import check_clips

        waves, labels = [c for s in range(args.clips // 3 + 1) for c in check_clips(s)][: args.clips], []
    audio = sum(w.numel() for w in waves) / 16000
    # "members apart": each network computes its own CNN and backbone, as before they were shared
    # (`w2v2.emotion.shared`); every other row shares them
    runtimes = {"pytorch fp32": (source, "fp32"), "pytorch fp32, members apart": (source, "fp32"),
                "pytorch bf16": (source, "bf16")}
    for name, int8 in (("onnx fp32", False), ("onnx int8", True)):
        out = args.work / name.replace(" ", "-")
        if not out.is_dir():
            tick = time.perf_counter()
            export_model(source, out, int8)
            print(f"exported {name} in {time.perf_counter() - tick:.0f} s")
        runtimes[name] = (out, "fp32")
    print(f"{args.ckpt}: {len(waves)} clips, {audio:.0f} s of audio; {torch.get_num_threads()} threads available")
    header = "| runtime | threads | audio-s/s | × pytorch fp32 | max abs dp | labels changed |"
    print(header + (" UAR |" if labels else ""))
    print("|---|---|---|---|---|---|" + ("---|" if labels else ""))
    reference: dict[int, np.ndarray] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        models, answers = {}, {}
        for name, (path, precision) in runtimes.items():
            if precision == "bf16" and not native_bf16(torch.device("cpu")):
                print(f"| {name} | {threads} | not native on this CPU | | | |" + (" |" if labels else ""))
                continue
            models[name] = EmotionRecognizer.from_pretrained(path, precision=precision,  # type: ignore[arg-type]
                                                             share="apart" not in name)
            answers[name] = torch.stack([w.mean(0) for w in models[name].window_probs(waves)]).numpy()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(args.rounds):  # runtimes interleaved, round by round: the machine's drift hits them alike
            for name, model in models.items():
                tick = time.perf_counter()
                model.window_probs(waves)
                times[name].append(time.perf_counter() - tick)
        base = None
        for name, probs in answers.items():
            speed = audio / statistics.median(times[name])
            base = base or speed
            ref = reference.setdefault(threads, probs)
            changed = float((probs.argmax(1) != ref.argmax(1)).mean())
            row = f"| {name} | {threads} | {speed:.1f} | {speed / base:.2f} | {np.abs(probs - ref).max():.1e} | " \
                  f"{changed:.1%} |"
            print(row + (f" {uar(labels, probs.argmax(1)):.3f} |" if labels else ""), flush=True)

if __name__ == "__main__":
    main()
