"""Emotion recognition with w2v2's models: decoding and windows, named models and ensembles, acoustic
descriptors, the travelling model, speech presence, and `EmotionRecognizer`, the one inference path."""
