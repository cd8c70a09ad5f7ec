"""onnxruntime profile of one graph, one thread: python experiments/shared/ort_profile.py GRAPH BATCH SECONDS"""
import json, collections, sys, time
import numpy as np, onnxruntime as ort
def prof(path, b, sec):
    o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1; o.enable_profiling = True
    o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    feed = {"wave": (np.random.randn(b, int(sec*16000))*0.1).astype(np.float32), "padding_mask": np.zeros((b, int(sec*16000)), bool)}
    s.run(None, feed); t=time.perf_counter(); s.run(None, feed); s.run(None, feed); dt=(time.perf_counter()-t)/2
    f = s.end_profiling(); ev = json.load(open(f))
    tot = collections.Counter()
    for e in ev:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            tot[e["args"]["op_name"]] += e["dur"]
    T = sum(tot.values())
    print(path.split("/")[-1], b, sec, f"{dt:.3f}s", {k: f"{v/T:.0%}" for k, v in tot.most_common(8)}, f"total {T/3/1e6:.3f}s")
prof(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
