"""Fusion metrics equal scikit-learn's; bootstrap intervals are seeded and sensible."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, log_loss

from workflow_scripts.common.metrics import (
    bootstrap_intervals,
    classification_metrics,
    confusion_matrices,
    metrics_from_confusion,
    objective_score,
)

CLASSES = ["neutral", "negative"]


def test_known_binary_example_by_hand_and_sklearn():
    # 6 neutral (5 right), 4 negative (2 right): WA 0.7, UA (5/6 + 2/4) / 2.
    y_true = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    y_pred = [0, 0, 0, 0, 0, 1, 1, 1, 0, 0]
    metrics = classification_metrics(y_true, y_pred, CLASSES)
    assert metrics["WA"] == pytest.approx(0.7)
    assert metrics["UA"] == pytest.approx((5 / 6 + 2 / 4) / 2)
    f1_neutral = 2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6)
    f1_negative = 2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4)
    assert metrics["WF1"] == pytest.approx((6 * f1_neutral + 4 * f1_negative) / 10)
    assert metrics["WF1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    assert metrics["confusion_matrix"] == [[5, 1], [2, 2]]
    assert metrics["support"] == {"neutral": 6, "negative": 4}
    assert metrics["n"] == 10


@pytest.mark.parametrize("n_classes,seed", [(2, 0), (2, 1), (3, 2), (4, 3)])
def test_random_labels_match_sklearn(n_classes, seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes, 57)
    y_pred = np.where(rng.random(57) < 0.6, y_true, rng.integers(0, n_classes, 57))
    classes = [f"c{i}" for i in range(n_classes)]
    metrics = classification_metrics(y_true, y_pred, classes)
    assert metrics["WA"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert metrics["UA"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert metrics["WF1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted", zero_division=0))
    assert metrics["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=range(n_classes)).tolist()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_degenerate_cases_match_sklearn():
    # A class never predicted, and a class absent from the truth (UA averages present classes).
    cases = [([0, 0, 1, 1], [0, 0, 0, 0]), ([0, 0, 0, 0], [0, 1, 0, 1]), ([1, 1, 1], [1, 1, 1])]
    for y_true, y_pred in cases:
        metrics = classification_metrics(y_true, y_pred, CLASSES)
        assert metrics["WA"] == pytest.approx(accuracy_score(y_true, y_pred))
        assert metrics["UA"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
        assert metrics["WF1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted", zero_division=0))


def test_batched_confusion_matrices_equal_one_by_one():
    rng = np.random.default_rng(4)
    y_true, y_pred = rng.integers(0, 3, (20, 31)), rng.integers(0, 3, (20, 31))
    batch = confusion_matrices(y_true, y_pred, 3)
    for b in range(20):
        assert (batch[b] == confusion_matrix(y_true[b], y_pred[b], labels=range(3))).all()
    values = metrics_from_confusion(batch)
    assert values["UA"][5] == pytest.approx(balanced_accuracy_score(y_true[5], y_pred[5]))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_objectives_match_sklearn_scorers():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 80)
    logits = rng.normal(size=(80, 3)) + 1.5 * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    assert objective_score("accuracy", y, proba) == pytest.approx(accuracy_score(y, pred))
    assert objective_score("balanced_accuracy", y, proba) == pytest.approx(balanced_accuracy_score(y, pred))
    assert objective_score("f1_weighted", y, proba) == pytest.approx(f1_score(y, pred, average="weighted"))
    assert objective_score("f1_macro", y, proba) == pytest.approx(f1_score(y, pred, average="macro"))
    assert objective_score("neg_log_loss", y, proba) == pytest.approx(-log_loss(y, proba), rel=1e-6)
    with pytest.raises(ValueError, match="unknown objective"):
        objective_score("auc", y, proba)


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(6)
    y_true = rng.integers(0, 2, 120)
    y_pred = np.where(rng.random(120) < 0.75, y_true, 1 - y_true)
    first = bootstrap_intervals(y_true, y_pred, 2, 500, 0.95, seed=42)
    assert first == bootstrap_intervals(y_true, y_pred, 2, 500, 0.95, seed=42)
    assert first != bootstrap_intervals(y_true, y_pred, 2, 500, 0.95, seed=43)
    point = classification_metrics(y_true, y_pred, CLASSES)
    for name in ("WA", "UA", "WF1"):
        low, high = first[name]
        assert low < point[name] < high
        assert 0.05 < high - low < 0.3  # about 2 * 1.96 * sqrt(0.75 * 0.25 / 120) = 0.15 for WA
    narrow = bootstrap_intervals(y_true, y_pred, 2, 500, 0.5, seed=42)
    assert narrow["WA"][1] - narrow["WA"][0] < first["WA"][1] - first["WA"][0]


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="equally long"):
        classification_metrics([0, 1], [0], CLASSES)
    with pytest.raises(ValueError, match="non-empty"):
        classification_metrics([], [], CLASSES)
