"""Fine-tuning on a CSV with a `corpus` column: a corpus lacking classes trains only on the classes it has."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from finetune.__main__ import main
from finetune.train import corpus_targets, masked_cross_entropy, partial_label_note
from w2v2.data.datasets import Item, load_dataset


def items(spec: list[tuple[int, str]]) -> list[Item]:
    return [Item(str(i), Path(f"{i}.wav"), label, "s", corpus) for i, (label, corpus) in enumerate(spec)]


def test_targets_carry_each_corpus_class_set() -> None:
    mixed = items([(0, "a"), (2, "a"), (4, "a"), (0, "b"), (2, "b")])
    targets, table = corpus_targets(mixed)
    assert table is not None and table.shape == (2, 6)
    rows = [t // 6 for t in targets]
    assert [t % 6 for t in targets] == [0, 2, 4, 0, 2]
    assert table[rows[0]].nonzero().flatten().tolist() == [0, 2, 4]
    assert table[rows[3]].nonzero().flatten().tolist() == [0, 2]
    assert partial_label_note(mixed, targets, table) == ("partial label sets: a trains on angry, sad, neutral; "
                                                          "b trains on angry, sad")
    # one corpus, or corpora with the same classes: plain labels, plain loss
    assert corpus_targets(items([(0, "a"), (2, "b"), (2, "a"), (0, "b")])) == ([0, 2, 2, 0], None)
    assert corpus_targets(items([(0, None), (5, None)])) == ([0, 5], None)


def test_an_absent_class_is_never_a_negative() -> None:
    table = torch.tensor([[True, False, True, False, False, False], [True] * 6])
    logits = torch.tensor([[1.0, 5.0, 2.0, 0.0, 0.0, 0.0], [1.0, 5.0, 2.0, 0.0, 0.0, 0.0]], requires_grad=True)
    targets = torch.tensor([0 + 6 * 0, 0 + 6 * 1])
    loss = masked_cross_entropy(logits, targets, None, table)
    # row 0: softmax over classes 0 and 2 only; row 1: over all six
    row0 = -(1 - math.log(math.exp(1) + math.exp(2)))
    expected = (row0 + F.cross_entropy(logits[1:].detach(), torch.tensor([0]))) / 2
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-6)
    loss.backward()
    assert logits.grad is not None and logits.grad[0, 1] == 0 and logits.grad[0, 3:].abs().sum() == 0
    assert logits.grad[1, 1] > 0  # the full corpus's absent-in-label classes are negatives
    plain = masked_cross_entropy(logits.detach(), torch.tensor([0, 2]), None, None)
    assert float(plain) == float(F.cross_entropy(logits.detach(), torch.tensor([0, 2])))


def test_a_csv_with_corpora_fine_tunes_on_each_corpus_classes(synthetic_corpus, tmp_path, capsys) -> None:
    source = synthetic_corpus(96, 8, 0)
    df = pd.read_csv(source / "train.csv")
    df = df.assign(path=[str(source / p) for p in df.path],
                   corpus=["full" if s in sorted(set(df.speaker))[::2] else "three" for s in df.speaker])
    df = df[(df.corpus == "full") | df.label.isin([0, 2, 5])]
    (tmp_path / "mixed").mkdir()
    df[["path", "label", "speaker", "corpus"]].to_csv(tmp_path / "mixed" / "labels.csv", index=False)
    loaded = load_dataset(tmp_path / "mixed").train
    assert {it.corpus for it in loaded} == {"full", "three"}
    assert all(it.speaker.startswith(f"{it.corpus}:") for it in loaded)  # speaker "1" of two corpora: two people
    main(["train", "--data", str(tmp_path / "mixed"), "--run", str(tmp_path / "run"), "--members", "1",
          "kinds=[finetune]", "epochs=1", "batch_size=4", "crop_seconds=1.0", "threads=1"])
    assert "three trains on angry, sad, happy" in capsys.readouterr().out
