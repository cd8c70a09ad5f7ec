"""The built-in synthetic emotional-speech corpus: `python -m w2v2.synth OUT_DIR` (see `corpus.py`)."""

from w2v2.synth.corpus import generate_corpus

__all__ = ["generate_corpus"]
