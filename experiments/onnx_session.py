"""Do onnxruntime's session options change ONNX speed on this CPU? One fine-tune of
pretrained:emotion-ravdess exported as `finetune export` does, run on one thread with: the options
`finetune export`'s runtime uses (OnnxClassifier), memory patterns off (they are planned per input shape,
and every clip has its own length), denormals flushed to zero, both, and the CPU memory arena off; each
against PyTorch fp32, runs interleaved, on a batch of one 3.8 s clip and on a series of single clips of
different lengths (a folder of clips, as `predict` sees it).

  python experiments/onnx_session.py > experiments/results/onnx_session.txt
"""
import tempfile
import time

import numpy as np
import torch
from onnx_common import export, fine_tune, session

from w2v2.emotion.exported import quiet

torch.set_num_threads(1)
net = fine_tune()

VARIANTS = {
    "as shipped": {},
    "memory patterns off": {"mem_pattern": False},
    "denormals as zero": {"config": {"session.set_denormal_as_zero": "1"}},
    "both": {"mem_pattern": False, "config": {"session.set_denormal_as_zero": "1"}},
    "memory arena off": {"arena": False},
}

with tempfile.TemporaryDirectory() as tmp, quiet():
    path = f"{tmp}/a.onnx"
    export(net, path)
    sessions = {k: session(path, **v) for k, v in VARIANTS.items()}
rng = np.random.default_rng(0)
workloads = {"one 3.8 s clip, 5 times": [rng.standard_normal((1, 60800)).astype(np.float32)] * 5,
             "20 single clips of 2-5 s, each its own length": [
                 rng.standard_normal((1, int(s * 16000))).astype(np.float32) for s in rng.uniform(2, 5, 20)]}
for name, clips in workloads.items():
    audio = sum(c.shape[1] for c in clips) / 16000
    times = {k: [] for k in ["pytorch fp32", *sessions]}
    for _ in range(5):
        for k in times:
            t = time.perf_counter()
            for x in clips:
                if k == "pytorch fp32":
                    with torch.no_grad():
                        net(torch.from_numpy(x), torch.zeros(x.shape, dtype=torch.bool))
                else:
                    sessions[k].run(None, {"wave": x, "padding_mask": np.zeros_like(x, dtype=bool)})
            times[k].append(time.perf_counter() - t)
    base = float(np.median(times["pytorch fp32"]))
    print(f"{name} ({audio:.1f} s of audio), one thread, median of 5 passes (runs interleaved)")
    print("| runtime | s/pass | audio-s/s | x pytorch |")
    print("|---|---|---|---|")
    for k, ts in times.items():
        med = float(np.median(ts))
        print(f"| {k} | {med:.3f} | {audio / med:.1f} | {base / med:.2f} |")
