"""Speed and memory of w2v2 against transformers: `python -m w2v2.bench` (see `run.py`; each side runs in
its own process, `worker.py`)."""
