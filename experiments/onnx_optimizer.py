"""Does onnxruntime's transformer graph optimizer (onnxruntime.transformers.optimizer, fusions of Gelu,
LayerNorm, attention) speed up the exported members beyond the session's own ORT_ENABLE_ALL fusions?
Each member of an exported ensemble, one thread, batches of 4 x 4 s, plain and optimized runs interleaved.

  python -m finetune export --format onnx --out runs/bench-inference/onnx-fp32 --ckpt pretrained:emotion-ravdess
  python experiments/onnx_optimizer.py runs/bench-inference/onnx-fp32 > experiments/results/onnx_optimizer.txt
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.transformers import optimizer


def session(path: Path) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads = 1, 1
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def main() -> None:
    root = Path(sys.argv[1])
    x = np.random.default_rng(0).standard_normal((4, 64000)).astype(np.float32)
    feed = {"wave": x, "padding_mask": np.zeros_like(x, dtype=bool)}
    print(f"$ python experiments/onnx_optimizer.py {root}")
    print("| member | plain s/batch | optimized s/batch | ratio | fused | max abs dlogit |\n|---|---|---|---|---|---|")
    totals = [0.0, 0.0]
    with tempfile.TemporaryDirectory() as tmp:
        for member in sorted(p.parent for p in root.glob("*/model.onnx")):
            opt = optimizer.optimize_model(str(member / "model.onnx"), model_type="bert", num_heads=0, hidden_size=0,
                                           opt_level=1)
            fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
            opt.save_model_to_file(f"{tmp}/opt.onnx")
            a, b = session(member / "model.onnx"), session(Path(f"{tmp}/opt.onnx"))
            diff = np.abs(a.run(None, feed)[0] - b.run(None, feed)[0]).max()
            ta, tb = [], []
            for _ in range(10):
                t = time.perf_counter(); a.run(None, feed); ta.append(time.perf_counter() - t)
                t = time.perf_counter(); b.run(None, feed); tb.append(time.perf_counter() - t)
            pa, pb = float(np.median(ta)), float(np.median(tb))
            totals[0] += pa; totals[1] += pb
            print(f"| {member.name} | {pa:.3f} | {pb:.3f} | {pa / pb:.2f} | {fused} | {diff:.1e} |")
    print(f"| all members | {totals[0]:.3f} | {totals[1]:.3f} | {totals[0] / totals[1]:.2f} | | |")


if __name__ == "__main__":
    main()
