"""One side of the benchmark (w2v2 or transformers), run in its own process by w2v2.bench.

Design choices:
- Each side runs in a fresh interpreter, so both are measured the same way: on CPU the peak resident
  set size of that process (VmHWM; getrusage's ru_maxrss elsewhere), on GPU torch.cuda.max_memory_allocated. Besides
  the absolute peak we report the step's own memory: the peak above the resident size measured
  right before the first step (weights and inputs loaded; on Linux the high-water mark is reset
  there through /proc/self/clear_refs), i.e. activations, gradients and workspace.
- Timings are medians over `steps` after `warmup` steps, with a device synchronise around each.
- The fused-op micro-benchmarks (`op` mode) also run one variant per process, for the same reason.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from w2v2.config import SAMPLE_RATE
from w2v2.model import normalize_waveform

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mb() -> float:
    """Current resident set size (Linux /proc; elsewhere the peak so far)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    """Peak resident set size of this process since start or the last reset (start_memory).

    Linux: VmHWM of /proc/self/status. Not getrusage's ru_maxrss there: it also counts the parent's
    pages at fork time (before exec), which would put the benchmark driver's RSS under both sides."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def start_memory(device: torch.device) -> float:
    """Reset the peak counter; return the current usage (MB) the step's memory is measured above."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    return _rss_mb()


def peak_memory(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _peak_rss_mb()


def timed(fn: Callable[[], object], steps: int, warmup: int, device: torch.device) -> list[float]:
    """Wall-clock seconds of `steps` calls of fn after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def load_side(side: str, directory: Path, kind: str) -> nn.Module:
    """The saved checkpoint `directory / kind` as a w2v2 or a transformers model."""
    if side == "w2v2":
        from w2v2.convert import load_hf

        return load_hf(directory / kind)
    import transformers

    cls = {"pretrain": transformers.Wav2Vec2ForPreTraining,
           "classifier": transformers.Wav2Vec2ForSequenceClassification}[kind]
    return cls.from_pretrained(directory / kind)


def pretrain_step(side: str, model: nn.Module, wave: torch.Tensor, mask: torch.Tensor,
                  negatives: torch.Tensor, autocast: contextlib.AbstractContextManager) -> Callable[[], float]:
    """A closure running forward + backward of the pretraining loss. negatives (b, t, k) time indices."""
    b, t, _ = negatives.shape
    flat_negatives = negatives + (torch.arange(b, device=negatives.device) * t)[:, None, None]  # HF: (b*t) rows

    def step() -> float:
        model.zero_grad(set_to_none=True)
        with autocast:
            if side == "w2v2":
                loss = model(wave, mask=mask, negative_indices=negatives).loss
            else:
                loss = model(wave, mask_time_indices=mask, sampled_negative_indices=flat_negatives).loss
        loss.backward()
        return loss.item()

    return step


def run_side(args: argparse.Namespace) -> dict:
    """Pretraining step time and memory, then classifier inference time, for one side."""
    device, directory = torch.device(args.device), Path(args.dir)
    autocast = (torch.autocast(device.type, DTYPES[args.dtype]) if args.dtype != "fp32"
                else contextlib.nullcontext())
    inputs = torch.load(directory / "inputs.pt")
    wave, mask, negatives = (inputs[k].to(device) for k in ("wave", "mask", "negatives"))
    model = load_side(args.side, directory, "pretrain").to(device).train()
    if args.compile:
        model = _compile(args.side, model)
    step = pretrain_step(args.side, model, wave, mask, negatives, autocast)
    base = start_memory(device)
    times = timed(step, args.steps, args.warmup, device)
    peak = peak_memory(device)
    loss = step()
    del model, step
    gc.collect()
    clf = load_side(args.side, directory, "classifier").to(device).eval()
    if args.compile:
        clf = _compile(args.side, clf)

    # the waveform a pipeline feeds each side: transformers' feature extractor normalises it (do_normalize)
    # where the model was trained so, w2v2's model does it itself (normalize_waveform in the config)
    preprocessor = json.loads((directory / "classifier" / "preprocessor_config.json").read_text())
    normalize = args.side != "w2v2" and preprocessor.get("do_normalize", False)
    clf_wave = normalize_waveform(wave, None) if normalize else wave

    def infer() -> torch.Tensor:
        with torch.no_grad(), autocast:
            return clf(clf_wave).logits

    infer_times = timed(infer, args.steps, args.warmup, device)
    logits = infer().float().cpu().tolist()
    tune_times, cached_times = finetune_times(args, clf, clf_wave, autocast, device)
    audio_seconds = wave.shape[0] * wave.shape[1] / SAMPLE_RATE
    return {"side": args.side, "step_s": statistics.median(times), "step_times": times,
            "peak_mb": peak, "step_mem_mb": peak - base, "loss": loss,
            "infer_s": statistics.median(infer_times),
            "infer_s_per_audio_s": statistics.median(infer_times) / audio_seconds,
            "finetune_audio_s_per_s": audio_seconds / statistics.median(tune_times),
            "cached_audio_s_per_s": audio_seconds / statistics.median(cached_times) if cached_times else None,
            "logits": logits, "threads": torch.get_num_threads(),
            "attn": getattr(getattr(clf, "config", None), "_attn_implementation", "sdpa"),
            "version": _version(args.side)}


def finetune_times(args: argparse.Namespace, clf: Any, wave: torch.Tensor,
                   autocast: contextlib.AbstractContextManager, device: torch.device
                   ) -> tuple[list[float], list[float]]:
    """Seconds of a fine-tuning step (forward, cross-entropy, backward) with the CNN frozen, no span masking
    and no dropout on either side (clf: either side's classifier, so typed Any); and, for w2v2 only, the
    same step from the frozen CNN's cached features (fine-tuning's cache: the CNN ran once, before training)."""
    import torch.nn.functional as F

    labels = torch.arange(wave.shape[0], device=device) % 2
    clf.train()
    if args.side == "w2v2":
        clf.freeze(feature_encoder=True)
        with torch.no_grad(), autocast:
            features, frame_mask = clf.backbone.encode(wave)
        no_mask = torch.zeros(features.shape[:2], dtype=torch.bool, device=device)
        forward = lambda: clf(wave, mask=no_mask).logits  # noqa: E731
        cached = lambda: clf.classify_features(features, frame_mask, mask=no_mask).logits  # noqa: E731
    else:
        clf.freeze_feature_encoder()
        clf.config.apply_spec_augment = False
        forward, cached = (lambda: clf(wave).logits), None  # noqa: E731

    def step(logits_of: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            clf.zero_grad(set_to_none=True)
            with autocast:
                logits = logits_of()
            F.cross_entropy(logits.float(), labels).backward()
        return run

    tune = timed(step(forward), args.steps, args.warmup, device)
    return tune, (timed(step(cached), args.steps, args.warmup, device) if cached is not None else [])


def _version(side: str) -> str:
    from importlib.metadata import version

    return version("w2v2" if side == "w2v2" else "transformers")


def _compile(side: str, model: nn.Module) -> nn.Module:
    if side == "w2v2":
        from w2v2.compile import compile_model

        return compile_model(model, fallback_random=False)  # speed, not eager-identical noise
    # transformers' model is not written for fullgraph; compiling a Module returns one (the stub: a callable)
    return cast(nn.Module, torch.compile(model))


# --- fused-op micro-benchmarks -------------------------------------------------------------------


def op_case(op: str, variant: str, device: torch.device) -> tuple[Callable[[], None], list[torch.Tensor]]:
    """fn (forward + backward) of one op variant at base size, and its inputs."""
    from einops import einsum, rearrange

    from w2v2.bench.reference import contrastive_logits_reference
    from w2v2.losses import contrastive_logits
    from w2v2.quantizer import lookup, straight_through_lookup

    gen = torch.Generator().manual_seed(0)
    if op == "contrastive":  # b=4, t=500, k=100, d=256; codes from a 2x320 codebook as in the model
        b, t, k, g, v, e = 4, 500, 100, 2, 320, 128
        codes = torch.randint(0, v, (b, t, g), generator=gen)
        codebook = torch.randn(g, v, e, generator=gen)
        q = rearrange(lookup(codebook, rearrange(codes, "b t g -> (b t) g")), "(b t) g e -> b t (g e)", b=b)
        c = torch.randn(b, t, g * e, generator=gen)
        negatives = torch.randint(0, t, (b, t, k), generator=gen)
        c, q, codes, negatives = (x.to(device) for x in (c, q, codes, negatives))
        leaves = [c.requires_grad_(), q.requires_grad_()]
        if variant == "fused":
            return lambda: contrastive_logits(c, q, negatives, 0.1, codes).logsumexp(-1).sum().backward(), leaves
        return lambda: contrastive_logits_reference(c, q, negatives, 0.1).logsumexp(-1).sum().backward(), leaves
    if op == "attention":  # base: b=4, h=12 heads of 64, t=500 frames, the last 100 of two utterances padded
        return _attention_case(variant, device, gen)
    # quantizer: b*t = 4*500 frames, g=2 groups of v=320 codewords of e=128 (base)
    n, g, v, e = 2000, 2, 320, 128
    logits = torch.randn(n, g, v, generator=gen).to(device).requires_grad_()
    codebook = torch.rand(g, v, e, generator=gen).to(device).requires_grad_()

    def run() -> None:
        p = torch.softmax(logits, dim=-1)
        codes = p.argmax(-1)
        if variant == "fused":
            q = straight_through_lookup(p, codes, codebook)
        else:
            q = einsum(torch.nn.functional.one_hot(codes, v).to(p.dtype) - p.detach() + p, codebook,
                       "n g v, g v e -> n g e")
        q.square().sum().backward()

    return run, [logits, codebook]


def _attention_case(variant: str, device: torch.device,
                    gen: torch.Generator) -> tuple[Callable[[], None], list[torch.Tensor]]:
    """SDPA with a boolean key-padding mask vs the explicit softmax(q k^T / sqrt(d) + mask) v."""
    import torch.nn.functional as F

    b, h, t, e = 4, 12, 500, 64
    q, k, v = (torch.randn(b, h, t, e, generator=gen).to(device).requires_grad_() for _ in range(3))
    keep = torch.ones(b, 1, 1, t, dtype=torch.bool, device=device)
    keep[2:, ..., -100:] = False

    def run() -> None:
        if variant == "fused":
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        else:
            scores = (q @ k.transpose(-1, -2)) / e**0.5
            y = scores.masked_fill(~keep, float("-inf")).softmax(-1) @ v
        y.square().sum().backward()

    return run, [q, k, v]


def run_op(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    fn, leaves = op_case(args.op, args.variant, device)

    def step() -> None:
        for x in leaves:
            x.grad = None
        fn()

    base = start_memory(device)
    times = timed(step, args.steps, args.warmup, device)
    return {"op": args.op, "variant": args.variant, "s": statistics.median(times),
            "mem_mb": peak_memory(device) - base}


def main() -> None:
    p = argparse.ArgumentParser(description="internal: one side of `python -m w2v2.bench`")
    p.add_argument("mode", choices=["side", "op"])
    p.add_argument("--side", choices=["w2v2", "transformers"])
    p.add_argument("--op", choices=["contrastive", "quantizer", "attention"])
    p.add_argument("--variant", choices=["fused", "reference"])
    p.add_argument("--dir")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--compile", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(run_side(args) if args.mode == "side" else run_op(args)))


if __name__ == "__main__":
    main()
