"""`make gpu-check`: the default recipe and inference on a CUDA GPU agree with the CPU.

On the synthetic corpus (no download), for one seed:
1. the same CPU-trained ensemble predicts the test clips on the GPU and on the CPU: probabilities within
   `INFER_TOL` (fp32 on both; TF32 off);
2. the recipe (one fine-tune + one probe, fp32) trains on the GPU and on the CPU from the same seed: test
   probabilities within `TRAIN_TOL` (the two devices' kernels round differently, and a few hundred
   updates let that grow);
3. the default precision on the GPU (bf16 autocast where it computes it, fp16 with a scaler elsewhere)
   trains and scores, with its time beside the CPU's;
4. where the GPU computes bf16, `--precision bf16` prediction stays within `BF16_TOL` of the CPU's fp32
   (the tolerance the CPU tests hold it to).
Prints one line per check and a JSON line last; exits 1 if a check fails, 2 without a GPU.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from finetune.__main__ import main as finetune
from finetune.outputs import PROB_COLUMNS
from w2v2.synth import generate_corpus

INFER_TOL = 1e-4
TRAIN_TOL = 0.05
BF16_TOL = 0.03
SMALL = ["--members", "1", "epochs=3", "probe_epochs=20", "scratch.epochs=3"]  # one seed of all three kinds


def probs(folder: Path) -> torch.Tensor:
    return torch.tensor(pd.read_csv(folder / "test_probs.csv")[PROB_COLUMNS].to_numpy())


def timed(argv: list[str]) -> float:
    tick = time.perf_counter()
    finetune(argv)
    return time.perf_counter() - tick


def main(root: Path = Path("runs/gpu-check")) -> int:
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA GPU here; nothing checked", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    data = root / "data"
    if not (data / "train.csv").is_file():
        generate_corpus(data, clips=240, speakers=12, seed=0)
    train = ["train", "--data", str(data), "--overwrite", *SMALL]
    seconds = {dev: timed([*train, "--run", str(root / f"fp32-{dev}"), f"device={dev}", "amp=none"])
               for dev in ("cpu", "cuda")}
    for dev in ("cpu", "cuda"):
        finetune(["submit", "--ckpt", str(root / "fp32-cpu"), "--data", str(data), "--out", str(root / f"sub-{dev}"),
                  "--device", dev])
    infer = float((probs(root / "sub-cpu") - probs(root / "sub-cuda")).abs().max())
    trained = float((probs(root / "fp32-cpu") - probs(root / "fp32-cuda")).abs().max())
    seconds["cuda-default"] = timed([*train, "--run", str(root / "default-cuda"), "device=cuda"])
    uar = {name: json.loads((root / name / "metrics.json").read_text())["test"]["uar"]
           for name in ("fp32-cpu", "fp32-cuda", "default-cuda")}
    checks = {"inference": (infer, INFER_TOL), "training": (trained, TRAIN_TOL)}
    if torch.cuda.is_bf16_supported():
        finetune(["submit", "--ckpt", str(root / "fp32-cpu"), "--data", str(data), "--out", str(root / "sub-bf16"),
                  "--device", "cuda", "--precision", "bf16"])
        checks["bf16 prediction"] = (float((probs(root / "sub-cpu") - probs(root / "sub-bf16")).abs().max()), BF16_TOL)
    for name, (value, tol) in checks.items():
        print(f"{name}: max |p_cpu - p_cuda| = {value:.2e} (tolerance {tol:g}) {'ok' if value <= tol else 'FAILED'}")
    print(f"test UAR: {uar}; seconds: { {k: round(v) for k, v in seconds.items()} }")
    ok = all(v <= t for v, t in checks.values())
    print(json.dumps({"gpu": torch.cuda.get_device_name(), "inference_max_dp": infer, "training_max_dp": trained,
                      "bf16_max_dp": checks.get("bf16 prediction", (None,))[0], "uar": uar, "seconds": seconds,
                      "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
