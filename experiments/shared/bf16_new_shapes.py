"""The cost of a new input shape for one convolution in fp32 and bf16 on the CPU (oneDNN builds a kernel per
shape): python experiments/shared/bf16_new_shapes.py"""
import time, torch
import torch.nn.functional as F
torch.set_num_threads(1)
w = torch.randn(32, 1, 10)
for dt in (torch.float32, torch.bfloat16):
    ts = []
    for L in range(70000, 70010):
        x = torch.randn(1, 1, L)
        t=time.perf_counter(); F.conv1d(x.to(dt), w.to(dt), stride=5); ts.append((time.perf_counter()-t)*1000)
    t=time.perf_counter(); F.conv1d(x.to(dt), w.to(dt), stride=5); again=(time.perf_counter()-t)*1000
    print(dt, "new shapes:", [round(v,1) for v in ts], "same shape again:", round(again,1))
with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
    ts=[]
    for L in range(80000, 80005):
        x = torch.randn(1, 1, L)
        t=time.perf_counter(); F.conv1d(x, w, stride=5); ts.append((time.perf_counter()-t)*1000)
    print("autocast new shapes", [round(v,1) for v in ts])
