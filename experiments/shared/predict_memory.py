"""Time and peak RSS of predict_many on 14 SAVEE clips with pretrained:emotion-ravdess, members shared or
apart, kept or loaded per call: python experiments/shared/predict_memory.py shared|apart kept|loaded-per-call"""
import resource, sys, time, torch
from w2v2.data.datasets import load_dataset
from w2v2.emotion.recognizer import EmotionRecognizer
torch.set_num_threads(1)
items = load_dataset("../shared/data/savee-16k").train[::40][:14]
rec = EmotionRecognizer.from_pretrained("pretrained:emotion-ravdess", keep_loaded=sys.argv[2] == "kept", share=sys.argv[1] == "shared")
t = time.perf_counter()
preds = rec.predict_many([it.path for it in items])
print(sys.argv[1:], f"{time.perf_counter() - t:.1f} s", f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", [p.label for p in preds][:5])
