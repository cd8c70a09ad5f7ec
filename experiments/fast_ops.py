"""What the spectral positional conv and the cheap dropout mask save in a training step, on one thread:
`python experiments/fast_ops.py [--rounds 3]`.

For the default recipe's two trained kinds at their shapes (batch 8 of 3 s crops, bf16 autocast, dropout
and LayerDrop as the recipe trains them): the fine-tune of `small` on cached CNN features and the tiny model
from the waveform; each step timed with the positional conv as conv1d or as a product of spectra
(`PositionalConv.spectral`) and the dropout mask drawn by torch's `bernoulli_` (what F.dropout and SDPA
draw on the CPU) or by `w2v2.dropout.keep_mask`. Variants alternate round by round (the machine drifts);
each cell is the median of the rounds' medians of 10 steps after 3 warm-up steps. Then the positional
conv alone (forward, and forward + backward) at training and prediction shapes of small, tiny and base.
Results: experiments/results/fast_ops.txt.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import w2v2.dropout
from finetune.config import FinetuneConfig, scratch_config
from finetune.model import build_classifier
from finetune.train import make_optimizer
from w2v2.context import PositionalConv

CHEAP = w2v2.dropout.keep_mask


def bernoulli_mask(shape: torch.Size, p: float, dtype: torch.dtype) -> torch.Tensor:
    """torch's own draw, scaled as F.dropout scales it."""
    return torch.empty(shape, dtype=dtype).bernoulli_(1 - p).div_(1 - p)


def step_fn(kind: str) -> tuple[torch.nn.Module, Callable[[], None]]:
    cfg = FinetuneConfig() if kind == "finetune" else scratch_config(FinetuneConfig(), 0)
    model = build_classifier(cfg)
    model.freeze(cfg.freeze_feature_encoder)
    opt = make_optimizer(model, cfg, 1000)[0]
    gen = torch.Generator().manual_seed(0)
    wave = torch.randn(8, 48000)
    with torch.no_grad():
        feats = model.backbone.feature_encoder(wave)
    labels = torch.randint(0, 6, (8,))
    model.train()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            if kind == "finetune":
                out = model.classify_features(feats, torch.zeros(feats.shape[:2], dtype=torch.bool), generator=gen)
            else:
                out = model(wave, torch.zeros_like(wave, dtype=torch.bool), generator=gen)
        loss = F.cross_entropy(out.logits.float(), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return model, step


def median_time(f: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        tick = time.perf_counter()
        f()
        times.append(time.perf_counter() - tick)
    return statistics.median(times)


def steps(rounds: int) -> None:
    print("| kind (step of batch 8 × 3 s, bf16) | positional conv | dropout mask | s per step | × the first row |")
    print("|---|---|---|---|---|")
    for kind in ("finetune", "scratch"):
        model, step = step_fn(kind)
        pos = model.backbone.context.pos_conv
        variants = [(s, m) for s in ((False, True) if pos.spectral else (False,)) for m in ("bernoulli_", "cheap")]
        times: dict[tuple[bool, str], list[float]] = {v: [] for v in variants}
        for _ in range(rounds):
            for spectral, mask in variants:
                pos.spectral = spectral
                w2v2.dropout.keep_mask = CHEAP if mask == "cheap" else bernoulli_mask  # type: ignore[assignment]
                for _ in range(3):
                    step()
                times[(spectral, mask)].append(median_time(step, 10))
        w2v2.dropout.keep_mask = CHEAP  # type: ignore[assignment]
        base = statistics.median(times[variants[0]])
        for (spectral, mask), ts in times.items():
            t = statistics.median(ts)
            print(f"| {kind} | {'spectra' if spectral else 'conv1d'} | {mask} | {t:.3f} | {base / t:.2f} |", flush=True)


def positional_conv() -> None:
    print("\n| positional conv (d, kernel, groups) | input b × t | conv1d fwd ms | spectra fwd ms | "
          "conv1d fwd+bwd ms | spectra fwd+bwd ms | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    for d, k, g, b, t in ((256, 64, 16, 8, 150), (256, 64, 16, 1, 400), (256, 64, 16, 8, 400), (256, 64, 16, 1, 40),
                          (64, 16, 4, 8, 150), (768, 128, 16, 4, 250), (768, 128, 16, 1, 1500)):
        torch.manual_seed(0)
        module = PositionalConv(d, k, g)
        x = torch.randn(b, t, d, requires_grad=True)
        row, outs = [], []
        for spectral in (False, True):
            module.spectral = spectral
            with torch.no_grad():
                outs.append(module(x))
                row.append(median_time(lambda m=module, x=x: m(x), 7) * 1e3)
        for spectral in (False, True):
            module.spectral = spectral
            row.append(median_time(lambda m=module, x=x: m(x).sum().backward(), 7) * 1e3)
        cells = " | ".join(f"{v:.2f}" for v in row)
        print(f"| {d}, {k}, {g} | {b} × {t} | {cells} | {(outs[0] - outs[1]).abs().max():.1e} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    steps(args.rounds)
    positional_conv()


if __name__ == "__main__":
    main()
