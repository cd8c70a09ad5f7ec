"""python -m pretrain: self-supervised wav2vec 2.0 pretraining."""
