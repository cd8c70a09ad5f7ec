"""Do onnxruntime's spinning worker threads cost the prediction path? The exported 9-member
pretrained:emotion-ravdess (fp32 and int8, as `python -m w2v2.bench.inference` writes them into
runs/bench-inference) predicting 60 SAVEE clips through `EmotionRecognizer.predict_waves`, with
`session.intra_op.allow_spinning` 1 (onnxruntime's default) and 0, at 2 and 1 threads; median of 2 passes.
(`OnnxClassifier` now sets 0 itself; the script overrides it with the setting measured.)

  python experiments/onnx_spinning.py > experiments/results/onnx_spinning.txt
"""
import time, sys, numpy as np, torch
import w2v2.emotion.exported as ex
from w2v2.data.datasets import load_dataset
from w2v2.data.audio import load_audio
from w2v2.emotion.recognizer import EmotionRecognizer
items = load_dataset("../shared/data/savee-16k").train
items = items[:: max(1, len(items) // 60)][:60]
waves = [load_audio(it.path) for it in items]
audio = sum(w.numel() for w in waves) / 16000
import onnxruntime as ort
orig = ort.SessionOptions
for threads in (2, 1):
    torch.set_num_threads(threads)
    for name in ("onnx-fp32", "onnx-int8"):
        for spin in ("1", "0"):
            class Opts(orig):  # the runtime's own setting (OnnxClassifier: 0) overridden by the one measured
                def add_session_config_entry(self, key, value):
                    super().add_session_config_entry(key, spin if key == "session.intra_op.allow_spinning" else value)

                def __init__(self):
                    super().__init__(); self.add_session_config_entry("session.intra_op.allow_spinning", spin)
            ort.SessionOptions = Opts
            rec = EmotionRecognizer.from_pretrained(f"runs/bench-inference/{name}", keep_loaded=True)
            rec.predict_waves(waves[:5])
            ts = []
            for _ in range(2):
                t = time.perf_counter(); rec.predict_waves(waves); ts.append(time.perf_counter() - t)
            print(threads, name, "spin", spin, f"{audio / np.median(ts):.1f} audio-s/s", flush=True)
            ort.SessionOptions = orig
