"""Does the exporter change ONNX speed? One fine-tune of pretrained:emotion-ravdess exported three ways:
torch.onnx.export(dynamo=True) as `finetune export` does, the same with optimize=False, and the
TorchScript exporter (dynamo=False); each timed on one thread against PyTorch fp32, plain runs interleaved.

  python experiments/onnx_exporters.py > experiments/results/onnx_exporters.txt
"""
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx_common import NAMES, export, fine_tune, session

from w2v2.emotion.exported import quiet

torch.set_num_threads(1)
net = fine_tune()
example = (torch.randn(2, 48000), torch.zeros(2, 48000, dtype=torch.bool))


with tempfile.TemporaryDirectory() as tmp, quiet():
    paths = {}
    paths["dynamo (finetune export)"] = f"{tmp}/a.onnx"
    export(net, paths["dynamo (finetune export)"])
    paths["dynamo, optimize=False"] = f"{tmp}/b.onnx"
    export(net, paths["dynamo, optimize=False"], optimize=False)
    paths["torchscript (dynamo=False)"] = f"{tmp}/c.onnx"
    torch.onnx.export(net, example, paths["torchscript (dynamo=False)"], dynamo=False, opset_version=17,
                      dynamic_axes={"wave": {0: "b", 1: "t"}, "padding_mask": {0: "b", 1: "t"}}, **NAMES)
    sessions = {k: session(v) for k, v in paths.items()}
    sizes = {k: Path(v).stat().st_size for k, v in paths.items()}
    nodes = {}
    for k, v in paths.items():
        g = onnx.load(v).graph
        nodes[k] = (len(g.node), sum(n.op_type == "Transpose" for n in g.node))
rng = np.random.default_rng(0)
for b, seconds in ((8, 8.0), (1, 3.8)):
    x = rng.standard_normal((b, int(seconds * 16000))).astype(np.float32)
    feed = {"wave": x, "padding_mask": np.zeros_like(x, dtype=bool)}
    with torch.no_grad():
        ref = net(torch.from_numpy(x), torch.zeros(x.shape, dtype=torch.bool)).numpy()
    times = {k: [] for k in ["pytorch fp32", *sessions]}
    for _ in range(5):
        for k in times:
            t = time.perf_counter()
            if k == "pytorch fp32":
                with torch.no_grad():
                    net(torch.from_numpy(x), torch.zeros(x.shape, dtype=torch.bool))
            else:
                sessions[k].run(None, feed)
            times[k].append(time.perf_counter() - t)
    base = float(np.median(times["pytorch fp32"]))
    print(f"batch {b} x {seconds:g} s, one thread, median of 5 (runs interleaved)")
    print("| runtime | s/batch | audio-s/s | x pytorch | nodes (transposes) | max abs dlogit |")
    print("|---|---|---|---|---|---|")
    for k, ts in times.items():
        med = float(np.median(ts))
        diff = 0.0 if k == "pytorch fp32" else float(np.abs(sessions[k].run(None, feed)[0] - ref).max())
        n = "" if k == "pytorch fp32" else f"{nodes[k][0]} ({nodes[k][1]})"
        print(f"| {k} | {med:.3f} | {b * seconds / med:.1f} | {base / med:.2f} | {n} | {diff:.1e} |")
