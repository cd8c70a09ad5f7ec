"""Metrics against hand-computed values."""

import pytest

from finetune.metrics import classification_metrics, confusion_matrix, metrics_line


def test_known_values() -> None:
    y_true = [0, 0, 0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 1, 1, 0, 2, 0]
    m = classification_metrics(y_true, y_pred, names=("a", "b", "c"))
    assert m["accuracy"] == pytest.approx(5 / 8)
    # recalls: a 3/4, b 1/2, c 1/2 -> UAR 7/12
    assert m["uar"] == pytest.approx(7 / 12)
    # precisions: a 3/5, b 1/2, c 1 -> F1 a 2/3, b 1/2, c 2/3
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert m["confusion_matrix"] == [[3, 1, 0], [1, 1, 0], [1, 0, 1]]


def test_absent_classes_do_not_count_in_uar() -> None:
    m = classification_metrics([0, 0, 1], [0, 0, 1])
    assert m["uar"] == 1.0 and m["accuracy"] == 1.0 and m["per_class_recall"]["sad"] is None
    assert confusion_matrix([5], [3]).sum() == 1


def test_the_metrics_line_every_command_prints() -> None:
    m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], names=["a", "b"])
    assert metrics_line(m) == "accuracy 0.750  UAR 0.750  macro-F1 0.733  (4 clips)"
    assert metrics_line(m, "12 s") == "accuracy 0.750  UAR 0.750  macro-F1 0.733  (12 s)"
