"""A torchrun worker for tests/test_pretrain.py: `python -m pretrain` with faults injected on one rank.

  torchrun --nproc_per_node=2 tests/ddp_fault_worker.py nan:RANK:CALL [empty:RANK:CALL ...] -- PRETRAIN_ARGS

nan: that rank's CALL-th micro-batch (counting from 1) holds a NaN sample; empty: it decodes no clip.
"""

from __future__ import annotations

import os
import sys

import torch

import pretrain.train
from pretrain.__main__ import main


def inject(faults: list[str]) -> None:
    rank = int(os.environ["RANK"])
    wanted = {int(call): kind for kind, r, call in (f.split(":") for f in faults) if int(r) == rank}
    real, calls = pretrain.train.load_batch, [0]

    def load_batch(*args, **kwargs) -> list[torch.Tensor]:
        waves = real(*args, **kwargs)
        calls[0] += 1
        kind = wanted.get(calls[0])
        if kind == "nan":
            waves[0] = torch.full_like(waves[0], float("nan"))
        return [] if kind == "empty" else waves

    pretrain.train.load_batch = load_batch


if __name__ == "__main__":
    split = sys.argv.index("--")
    inject(sys.argv[1:split])
    main(sys.argv[split + 1:])
