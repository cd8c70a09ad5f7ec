"""Does ONNX's Attention operator (opset 23) pay? A fine-tune and a tiny model of pretrained:emotion-ravdess, each exported by
`w2v2.emotion.exported.export_network` as it is (opset 23, attention one node) and with the exporter's default
opset (attention as matrix products, softmax and masks, as before); each timed against PyTorch fp32 at 1 and 2
threads, runs interleaved, median of 15.

  python experiments/onnx_attention.py > experiments/results/onnx_attention.txt
"""

import collections
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

import w2v2.emotion.exported as exported
from w2v2.emotion.members import checkpoint_spec, load_classifier


def compare(member: str) -> None:
    SOURCE = checkpoint_spec("pretrained:emotion-ravdess") / member
    net, _ = load_classifier(SOURCE)
    net.eval()
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        for name, opsets in (
            ("opset 23: one Attention node", (23, None)),
            ("default opset: attention spelled out", (None,)),
        ):
            exported.OPSETS = opsets
            folders[name] = exported.export_network(SOURCE, Path(tmp) / str(len(folders)))
        graphs = {k: onnx.load(str(v / exported.ONNX_FILE)) for k, v in folders.items()}
        print(
            f"$ python experiments/onnx_attention.py   ({SOURCE.parent.name}/{SOURCE.name}, onnxruntime {ort.__version__}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads available)"
        )
        for k, g in graphs.items():
            ops = collections.Counter(n.op_type for n in g.graph.node)
            print(
                f"{k}: opset {exported.graph_opset(folders[k] / exported.ONNX_FILE)}, {len(g.graph.node)} nodes, "
                f"{ops['Attention']} Attention, {ops['Softmax']} Softmax, {ops['Transpose']} Transpose"
            )
        rng = np.random.default_rng(0)
        print(
            "| input | threads | pytorch fp32 s | "
            + " | ".join(f"{k}: x pytorch" for k in folders)
            + " | opset 23 / default | max abs dlogit |"
        )
        print("|---|---|---|" + "---|" * len(folders) + "---|---|")
        for threads in (1, 2):
            torch.set_num_threads(threads)
            sessions = {}
            for k, v in folders.items():
                o = ort.SessionOptions()
                o.intra_op_num_threads, o.inter_op_num_threads = threads, 1
                sessions[k] = ort.InferenceSession(str(v / exported.ONNX_FILE), o, providers=["CPUExecutionProvider"])
            for b, seconds in ((1, 3.8), (1, 8.0), (8, 8.0)):
                x = rng.standard_normal((b, int(seconds * 16000))).astype(np.float32)
                mask = np.zeros_like(x, dtype=bool)
                if b > 1:
                    mask[1, -16000:] = True  # one padded window: the mask must act the same
                feed = {"wave": x, "padding_mask": mask}
                with torch.no_grad():
                    ref = net(torch.from_numpy(x), torch.from_numpy(mask)).logits.numpy()
                times = {k: [] for k in ["pytorch", *sessions]}
                for _ in range(15):
                    for k in times:
                        t = time.perf_counter()
                        if k == "pytorch":
                            with torch.no_grad():
                                net(torch.from_numpy(x), torch.from_numpy(mask))
                        else:
                            sessions[k].run(None, feed)
                        times[k].append(time.perf_counter() - t)
                med = {k: float(np.median(v)) for k, v in times.items()}
                diff = max(float(np.abs(s.run(None, feed)[0] - ref).max()) for s in sessions.values())
                a, d = list(sessions)
                print(
                    f"| {b} x {seconds:g} s | {threads} | {med['pytorch']:.4f} | "
                    + " | ".join(f"{med['pytorch'] / med[k]:.2f}" for k in sessions)
                    + f" | {med[d] / med[a]:.2f} | {diff:.1e} |",
                    flush=True,
                )


for member in ("member_1", "member_1_scratch"):
    compare(member)
