"""A worker for tests/pretrain/test_pretrain.py: `python -m pretrain` killed at a known point.

  python tests/pretrain/kill_worker.py STEP -- PRETRAIN_ARGS

The process SIGKILLs itself when it is about to save the checkpoint of update STEP: updates up to
STEP are trained and logged, the checkpoint of STEP is never written (a kill at a deterministic
point, not after a timed wait).
"""

from __future__ import annotations

import os
import signal
import sys

import pretrain.train
from pretrain.__main__ import main


def kill_before_saving(step: int) -> None:
    real = pretrain.train.save_checkpoint

    def save_checkpoint(run, model, optimizer, scheduler, trainer, *args, **kwargs):
        if trainer["step"] == step:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(run, model, optimizer, scheduler, trainer, *args, **kwargs)

    pretrain.train.save_checkpoint = save_checkpoint


if __name__ == "__main__":
    split = sys.argv.index("--")
    kill_before_saving(int(sys.argv[1]))
    main(sys.argv[split + 1:])
