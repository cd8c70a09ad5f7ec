"""torch.compile for training and inference, as one whole graph.

Design choices:
- fullgraph=True: a graph break is an error, not a silent slowdown. The model is written for it
  (static shapes, no .item() in forward, the Gumbel temperature a buffer); what cannot be traced
  stays outside the compiled region: span masking and negative sampling (their number of spans
  is data dependent) are drawn eagerly and passed in as `mask` / `negative_indices`.
- dynamic=False by default: batches bucketed to a few lengths compile once per shape; pass
  dynamic=None to let PyTorch generalise after the second shape.
- Inductor's random numbers differ from eager's; `fallback_random` keeps eager's RNG so a compiled
  step draws the same Gumbel noise and dropout masks as an eager one with the same seed (needed
  for exact comparisons, costs little: the noise is a small part of the step).
- LayerDrop draws with Python's `random`, which forces a recompile per pattern of dropped layers:
  compile with context.layerdrop=0, or accept a few cached graphs.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn


def compile_model(model: nn.Module, mode: str | None = None, dynamic: bool | None = False,
                  fallback_random: bool = True) -> nn.Module:
    """The model compiled as one graph (a graph break raises). Call it with explicit `mask` and
    `negative_indices` for pretraining. `mode`: None, "reduce-overhead" or "max-autotune"."""
    if fallback_random:
        import torch._inductor.config as inductor_config

        inductor_config.fallback_random = True
    # torch.compile of a Module returns an OptimizedModule (a Module); its stub says any callable
    return cast(nn.Module, torch.compile(model, fullgraph=True, dynamic=dynamic, mode=mode))
