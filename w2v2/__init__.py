"""w2v2: wav2vec 2.0 written from scratch in PyTorch, for speech emotion recognition."""

from w2v2.checkpoint import load_model, save_model
from w2v2.config import ModelConfig, apply_overrides, preset
from w2v2.convert import load_hf, save_hf
from w2v2.emotion.recognizer import EmotionRecognizer, Prediction
from w2v2.model import Wav2Vec2ForClassification, Wav2Vec2ForPreTraining, Wav2Vec2Model, build_model

__all__ = [
    "EmotionRecognizer", "ModelConfig", "Prediction", "Wav2Vec2ForClassification", "Wav2Vec2ForPreTraining",
    "Wav2Vec2Model", "apply_overrides",
    "build_model", "load_hf", "load_model", "preset", "save_hf", "save_model",
]
__version__ = "0.1.0"
