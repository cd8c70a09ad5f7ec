"""PyTorch SharedClassifiers vs its exported ONNX graph (the six members of pretrained:emotion-ravdess that
share a CNN), one thread. Run from the project root: python experiments/shared/graph_time.py"""
import time, torch, statistics, sys
from w2v2.emotion.members import load_classifier
from w2v2.emotion.shared import SharedClassifiers, shared_parts
from w2v2.emotion.exported import OnnxClassifier
torch.set_num_threads(1)
base="w2v2/pretrained/emotion-ravdess/"
names=["member_1","member_1_probe","member_2","member_2_probe","member_3","member_3_probe"]
models=shared_parts(load_classifier(base+n)[0] for n in names)
sh=SharedClassifiers(models).eval()
g=OnnxClassifier("runs/bench-inference/onnx-fp32/member_1", threads=1)
for b, sec in ((1, 3.8), (8, 8.0)):
    w=torch.randn(b, int(sec*16000))*0.1; m=torch.zeros_like(w, dtype=torch.bool)
    tp, to = [], []
    with torch.no_grad():
        sh(w,m); g(w,m)
        for _ in range(5):
            t=time.perf_counter(); a=sh(w,m).logits; tp.append(time.perf_counter()-t)
            t=time.perf_counter(); c=g(w,m).logits; to.append(time.perf_counter()-t)
    print(b, sec, "pt", round(statistics.median(tp),3), "onnx", round(statistics.median(to),3), "ratio", round(statistics.median(tp)/statistics.median(to),2), float((a-c).abs().max()))
