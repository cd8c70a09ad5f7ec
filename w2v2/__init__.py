"""w2v2: wav2vec 2.0 written from scratch in PyTorch, for speech emotion recognition."""

from w2v2.config import ModelConfig, preset

__all__ = ["ModelConfig", "preset"]
__version__ = "0.1.0"
