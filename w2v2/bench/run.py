"""Speed and memory of w2v2 against transformers' Wav2Vec2, side by side: `python -m w2v2.bench`.

Design choices:
- Same architecture, same weights (written once with save_hf, read by load_hf and by transformers'
  from_pretrained), same batch, same span mask and same distractor indices (ours (b, t, k) time
  indices; transformers' flat (b*t) rows = ours + b*t offsets).
- Equal work: dropout and LayerDrop are set to 0 in the benchmarked config (train mode otherwise),
  so neither side skips or masks anything the other computes.
- Each side runs in its own subprocess (w2v2.bench.worker) so peak memory is counted the same way
  for both (peak RSS on CPU, max_memory_allocated on GPU) and neither inherits the other's heap.
- Reported: median pretraining forward+backward step, peak memory and the step's own memory
  (peak above the loaded weights and inputs), prediction (eval, no_grad) and a fine-tuning step with
  the CNN frozen (both in audio seconds per second; ours also from cached CNN features, as fine-tuning
  trains by default), each the median of `--rounds` alternating rounds with their spread, and a last
  line of JSON with the ratios. `--ops` adds the fused-op micro-benchmarks.
- The classifier check feeds each side what its pipeline would: transformers' feature extractor
  normalises the waveform where the checkpoint says so (`do_normalize`), as our model does itself.
- transformers is a dev extra: it is looked up only here, with a clear message when missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from w2v2.config import PRESETS, SAMPLE_RATE, FeatureEncoderConfig, ModelConfig, apply_overrides, preset
from w2v2.convert import save_hf
from w2v2.masking import compute_mask, sample_negatives
from w2v2.model import build_model
from w2v2.training.progress import progress_bar

SIDES = ("w2v2", "transformers")
NO_DROPOUT = ["context.dropout=0.0", "context.attention_dropout=0.0", "context.activation_dropout=0.0",
              "context.input_dropout=0.0", "context.layerdrop=0.0", "objective.features_dropout=0.0"]


def bench_config(name: str, overrides: list[str]) -> ModelConfig:
    """The preset with dropout and LayerDrop off (equal work on both sides), then user overrides."""
    return apply_overrides(preset(name), NO_DROPOUT + overrides)


def prepare(cfg: ModelConfig, batch: int, seconds: float, directory: Path, seed: int = 0) -> dict[str, int]:
    """Write the pretraining and classifier checkpoints (same backbone) and the inputs to `directory`."""
    torch.manual_seed(seed)
    pre = build_model(cfg, "pretrain")
    save_hf(pre, directory / "pretrain")
    clf = build_model(cfg, "classifier")
    clf.load_backbone_from(pre)
    save_hf(clf, directory / "classifier")
    gen = torch.Generator().manual_seed(seed)
    s = int(round(seconds * SAMPLE_RATE))
    wave = torch.randn(batch, s, generator=gen) * 0.1
    t = pre.backbone.feature_encoder.num_frames(s)
    m = cfg.masking
    mask = compute_mask((batch, t), m.mask_prob, m.mask_length, m.min_masks, gen)
    negatives = sample_negatives(mask, cfg.objective.num_negatives, gen)
    torch.save({"wave": wave, "mask": mask, "negatives": negatives}, directory / "inputs.pt")
    return {"samples": s, "frames": t, "masked": int(mask.sum()),
            "parameters": sum(p.numel() for p in pre.parameters())}


def run_worker(argv: list[str]) -> dict:
    """Run `python -m w2v2.bench.worker argv` and parse its last stdout line."""
    proc = subprocess.run([sys.executable, "-m", "w2v2.bench.worker", *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"w2v2/bench/worker.py {' '.join(argv[:2])} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def worker_args(args: argparse.Namespace) -> list[str]:
    flags = ["--device", args.device, "--dtype", args.dtype, "--steps", str(args.steps), "--warmup", str(args.warmup),
             "--threads", str(args.threads)]
    return flags + (["--compile"] if args.compile else [])


def compare(args: argparse.Namespace) -> tuple[dict, dict[str, dict]]:
    cfg = bench_config(args.preset, args.set)
    with tempfile.TemporaryDirectory(prefix="w2v2-bench-") as tmp:
        info = prepare(cfg, args.batch, args.seconds, Path(tmp))
        runs = [(side, run_worker(["side", "--side", side, "--dir", tmp, *worker_args(args)]))
                for _ in progress_bar(range(args.rounds), desc="benchmark rounds", file=sys.stderr) for side in SIDES]
    return info, {side: best([r for s, r in runs if s == side]) for side in SIDES}


TIMED = ("step_s", "infer_s", "infer_s_per_audio_s", "finetune_audio_s_per_s", "cached_audio_s_per_s")


def best(runs: list[dict]) -> dict:
    """Per side, the median over the rounds of each timing, with its spread (`KEY_range`: the lowest and
    highest round), and the largest round's memory."""
    out = dict(runs[0])
    for key in TIMED:
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key], out[f"{key}_range"] = statistics.median(values), (min(values), max(values))
    out["peak_mb"] = max(r["peak_mb"] for r in runs)
    out["step_mem_mb"] = max(r["step_mem_mb"] for r in runs)
    return out


def ratios(results: dict[str, dict]) -> dict[str, float]:
    ours, hf = results["w2v2"], results["transformers"]
    return {"pretrain_speedup": hf["step_s"] / ours["step_s"],
            "pretrain_peak_memory_ratio": ours["peak_mb"] / hf["peak_mb"],
            "pretrain_step_memory_ratio": ours["step_mem_mb"] / max(hf["step_mem_mb"], 1e-6),
            "inference_speedup": hf["infer_s"] / ours["infer_s"],
            "finetune_speedup": ours["finetune_audio_s_per_s"] / hf["finetune_audio_s_per_s"],
            "finetune_cached_speedup": ours["cached_audio_s_per_s"] / hf["finetune_audio_s_per_s"]}


def logit_diff(results: dict[str, dict]) -> float:
    a, b = (torch.tensor(results[s]["logits"]) for s in SIDES)
    return (a - b).abs().max().item()


def print_table(args: argparse.Namespace, info: dict, results: dict[str, dict], r: dict[str, float]) -> None:
    ours, hf = results["w2v2"], results["transformers"]
    mem = "MB peak RSS" if args.device == "cpu" else "MB max allocated"
    print(f"w2v2 vs transformers {hf['version']} (attention: {hf['attn']}) | preset {args.preset}, "
          f"{info['parameters'] / 1e6:.1f}M parameters | batch {args.batch} x {args.seconds:g} s "
          f"({info['frames']} frames, {info['masked']} masked) | {args.device} {args.dtype}, "
          f"{ours['threads']} threads | median of {args.steps} after {args.warmup} warm-up, median of {args.rounds} "
          "round(s)"
          f"{' | torch.compile' if args.compile else ''}")
    rows = [("pretrain step fwd+bwd (s)", ours["step_s"], hf["step_s"], f"{r['pretrain_speedup']:.2f}x faster",
             "step_s"),
            (f"pretrain peak memory ({mem})", ours["peak_mb"], hf["peak_mb"],
             f"{r['pretrain_peak_memory_ratio']:.2f}x", ""),
            ("pretrain step memory above weights (MB)", ours["step_mem_mb"], hf["step_mem_mb"],
             f"{r['pretrain_step_memory_ratio']:.2f}x", ""),
            ("prediction (audio s per s)", 1 / ours["infer_s_per_audio_s"], 1 / hf["infer_s_per_audio_s"],
             f"{r['inference_speedup']:.2f}x faster", "infer_s_per_audio_s"),
            ("fine-tune step, CNN frozen (audio s per s)", ours["finetune_audio_s_per_s"],
             hf["finetune_audio_s_per_s"], f"{r['finetune_speedup']:.2f}x faster", "finetune_audio_s_per_s"),
            ("  the same from cached CNN features", ours["cached_audio_s_per_s"], hf["finetune_audio_s_per_s"],
             f"{r['finetune_cached_speedup']:.2f}x faster (transformers: no cache)", "cached_audio_s_per_s")]
    print(f"{'':44s}{'w2v2':>10s}{'transformers':>14s}   w2v2 vs transformers   (round spread: w2v2 | transformers)")
    for name, a, b, note, key in rows:
        spread = f"   ({_spread(ours, key)} | {_spread(hf, key)})" if args.rounds > 1 and key else ""
        print(f"{name:44s}{a:10.4g}{b:14.4g}   {note}{spread}")
    print(f"pretraining loss (Gumbel noise differs): w2v2 {ours['loss']:.4g}, transformers {hf['loss']:.4g}; "
          f"classifier max |logit difference| {logit_diff(results):.2e} (same weights)")


def _spread(side: dict, key: str) -> str:
    lo, hi = side.get(f"{key}_range") or (side.get(key), side.get(key))
    if lo is None or hi is None:
        return "-"
    if key == "infer_s_per_audio_s":  # shown as audio s per s
        lo, hi = 1 / hi, 1 / lo
    return f"{lo:.4g}-{hi:.4g}"


def bench_ops(args: argparse.Namespace) -> dict[str, float]:
    """Fused vs straightforward op, forward+backward at base size: time and memory above inputs."""
    out = {}
    for op in ("contrastive", "quantizer", "attention"):
        res = {v: run_worker(["op", "--op", op, "--variant", v, *worker_args(args)]) for v in ("fused", "reference")}
        f, ref = res["fused"], res["reference"]
        out[f"{op}_speedup"] = ref["s"] / f["s"]
        out[f"{op}_memory_ratio"] = f["mem_mb"] / max(ref["mem_mb"], 1e-6)
        print(f"{op:12s} fused {f['s'] * 1e3:8.2f} ms {f['mem_mb']:8.1f} MB | reference {ref['s'] * 1e3:8.2f} ms "
              f"{ref['mem_mb']:8.1f} MB | {out[f'{op}_speedup']:.2f}x faster, {out[f'{op}_memory_ratio']:.2f}x memory")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m w2v2.bench", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="base", choices=sorted(PRESETS))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seconds", type=float, default=4.0, help="audio seconds per utterance")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="autocast dtype")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="alternate the sides this many times; report the median")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads per side")
    p.add_argument("--compile", action="store_true", help="torch.compile both sides (w2v2: fullgraph)")
    p.add_argument("--ops", action="store_true", help="also benchmark the fused ops against their references")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="model config overrides")
    args = p.parse_args(argv)
    too_short = args.seconds * SAMPLE_RATE < FeatureEncoderConfig().receptive_field
    if args.batch < 1 or too_short or args.steps < 1 or args.warmup < 0 or args.rounds < 1:
        p.error("need --batch >= 1, --seconds >= 0.025, --steps >= 1, --warmup >= 0, --rounds >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: no CUDA device is available here")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if importlib.util.find_spec("transformers") is None:
        sys.exit("python -m w2v2.bench: the benchmark compares against Hugging Face transformers, which is not "
                 "installed: pip install -e '.[dev]' (or pip install transformers)")
    info, results = compare(args)
    r = ratios(results)
    print_table(args, info, results, r)
    if args.ops:
        r |= bench_ops(args)
    summary = {"preset": args.preset, "batch": args.batch, "seconds": args.seconds, "device": args.device,
               "dtype": args.dtype, "compile": args.compile, **{k: round(v, 4) for k, v in r.items()},
               "w2v2_step_s": results["w2v2"]["step_s"], "transformers_step_s": results["transformers"]["step_s"],
               "w2v2_infer_s_per_audio_s": results["w2v2"]["infer_s_per_audio_s"],
               "transformers_infer_s_per_audio_s": results["transformers"]["infer_s_per_audio_s"],
               "w2v2_finetune_audio_s_per_s": results["w2v2"]["finetune_audio_s_per_s"],
               "w2v2_cached_audio_s_per_s": results["w2v2"]["cached_audio_s_per_s"],
               "transformers_finetune_audio_s_per_s": results["transformers"]["finetune_audio_s_per_s"],
               "rounds": args.rounds}
    if not all(math.isfinite(v) and v > 0 for v in r.values()):
        print(f"warning: non-finite or non-positive ratio in {r}", file=sys.stderr)
    print(json.dumps(summary))
