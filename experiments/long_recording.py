"""Peak memory of `predict --timeline` on long recordings (issue: memory independent of the length).

Writes an N-minute 16 kHz recording (a synthetic voice talking 20 s, then 10 s of silence, repeated) and runs
`python -m finetune predict FILE --timeline DIR` in a child process under /usr/bin/time -v, for each length.
Run from the project root: python experiments/long_recording.py 1 12 30 60 120 > experiments/results/long_recording.txt"""
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from w2v2.synth.corpus import make_speaker, synthesize_clip


def recording(path: Path, minutes: float) -> None:
    rng = np.random.default_rng(0)
    talk = np.concatenate([synthesize_clip(e % 6, make_speaker(1, 0), rng, seconds=4.0)[0] for e in range(5)])
    block = np.concatenate([talk, np.zeros(16000 * 10, dtype=np.float32)])
    with sf.SoundFile(str(path), "w", 16000, 1, subtype="PCM_16") as f:
        for _ in range(int(minutes * 60 / (len(block) / 16000))):
            f.write(block)


for minutes in map(float, sys.argv[1:]):
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        recording(wav, minutes)
        tick = time.perf_counter()
        out = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "finetune", "predict", str(wav), "--threads",
                              "1", "--timeline", str(Path(tmp) / "tl"), "--out", str(Path(tmp) / "p.csv")],
                             capture_output=True, text=True, check=True)
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
        rows = sum(1 for _ in open(Path(tmp) / "tl" / "long.csv")) - 1
        print(f"{minutes:.0f} min ({wav.stat().st_size / 1e6:.0f} MB wav): peak RSS {rss / 1024:.0f} MB, "
              f"{rows} windows, {time.perf_counter() - tick:.0f} s wall (one thread)", flush=True)
