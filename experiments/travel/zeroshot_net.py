"""Issue 32: the multi-corpus fine-tuned network (runs/emotion-init/backbone: pretrained:small fine-tuned
on RAVDESS + ASED + Indian, each on its own classes) on the three corpora it never heard, with no
training on them, beside the shipped travelling model (trained on the same three corpora) and the two
averaged. Run from the project root: python experiments/travel/zeroshot_net.py [OUT.pt]"""
import sys
import numpy as np, torch
from w2v2.data.audio import load_audio
from w2v2.emotion.recognizer import EmotionRecognizer

E = ["angry", "fear", "sad", "disgust", "neutral", "happy"]
EVAL = ["savee", "turev-db", "urdu"]
out = sys.argv[1] if len(sys.argv) > 1 else "runs/travel/zeroshot_net.pt"
torch.set_num_threads(1)
meta = torch.load("runs/travel/feats_small.pt", weights_only=False)["meta"]
meta = meta[meta.corpus.isin(EVAL)].reset_index(drop=True)
waves = [load_audio(f"../shared/data/{c}-16k/{p}") for c, p in zip(meta.corpus, meta.path)]
net = EmotionRecognizer.from_pretrained("runs/emotion-init/backbone")
p_net = net.clip_probs(waves, progress=True)[0]
travel = EmotionRecognizer.from_pretrained("pretrained:emotion")
p_set = travel.clip_probs(waves, groups=list(meta.corpus))[0]
p_spk = travel.clip_probs(waves, groups=[f"{c}/{s}" for c, s in zip(meta.corpus, meta.speaker)])[0]
torch.save({"meta": meta, "net": p_net, "set": p_set, "speaker": p_spk}, out)
print("saved", out)
