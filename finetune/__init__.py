"""python -m finetune: emotion recognition fine-tuning, evaluation and prediction."""
