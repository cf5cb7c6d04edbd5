"""Emotion-recognition metrics as the paper defines them, with seeded bootstrap intervals.

WA (weighted accuracy) is plain accuracy, UA (unweighted accuracy) is balanced accuracy (the
mean of per-class recalls over the classes present), WF1 is the support-weighted F1. All
three are computed from confusion matrices, so the bootstrap evaluates thousands of
resamples at once (a loop over scikit-learn calls would dominate the stage's run time); the
tests check every value against scikit-learn. :func:`metrics_document` builds the metrics
document of every kind of variant (schemas/metrics.schema.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

METRICS = ("WA", "UA", "WF1")

# Objectives that tuning and model selection may maximise (scikit-learn scorer names).
OBJECTIVES = ("accuracy", "balanced_accuracy", "f1_weighted", "f1_macro", "neg_log_loss")


def confusion_matrices(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrices (rows true, columns predicted) of each row of ``y_true`` / ``y_pred``.

    Inputs of shape (n,) give one (K, K) matrix; shape (B, n) gives (B, K, K).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    single = y_true.ndim == 1
    y_true, y_pred = np.atleast_2d(y_true), np.atleast_2d(y_pred)
    batch = y_true.shape[0]
    codes = y_true * n_classes + y_pred + (np.arange(batch) * n_classes * n_classes)[:, None]
    counts = np.bincount(codes.ravel(), minlength=batch * n_classes * n_classes)
    matrices = counts.reshape(batch, n_classes, n_classes)
    return matrices[0] if single else matrices


def metrics_from_confusion(matrices: np.ndarray) -> dict[str, np.ndarray]:
    """WA, UA and WF1 of one (K, K) or a batch of (B, K, K) confusion matrices.

    Matches scikit-learn: UA averages recall over classes with support (as
    ``balanced_accuracy_score`` does), and F1 is 0 where precision or recall is undefined.
    """
    matrices = np.asarray(matrices, dtype=np.float64)
    diagonal = np.diagonal(matrices, axis1=-2, axis2=-1)
    support = matrices.sum(axis=-1)
    predicted = matrices.sum(axis=-2)
    total = support.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, diagonal / support, 0.0)
        # 2 TP / (support + predicted), scikit-learn's own formula, so the values agree to the last bit
        f1 = np.where(support + predicted > 0, 2 * diagonal / (support + predicted), 0.0)
        present = (support > 0).sum(axis=-1)
        return {
            "WA": diagonal.sum(axis=-1) / total,
            "UA": recall.sum(axis=-1) / present,
            "WF1": (f1 * support).sum(axis=-1) / total,
        }


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict[str, Any]:
    """WA, UA, WF1, confusion matrix (rows true, columns predicted) and support per class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or len(y_true) == 0:
        raise ValueError(
            f"metrics need two equally long non-empty label vectors, got {y_true.shape} and {y_pred.shape}"
        )
    matrix = confusion_matrices(y_true, y_pred, len(classes))
    values = metrics_from_confusion(matrix)
    return {
        **{name: float(values[name]) for name in METRICS},
        "n": int(len(y_true)),
        "confusion_matrix": matrix.astype(int).tolist(),
        "support": {label: int(count) for label, count in zip(classes, matrix.sum(axis=1))},
    }


def bootstrap_intervals(
    y_true: Sequence[int], y_pred: Sequence[int], n_classes: int, resamples: int, confidence: float, seed: int
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of WA, UA and WF1 (utterances resampled with replacement).

    Seeded, so the same inputs give the same intervals.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(y_true), size=(resamples, len(y_true)))
    values = metrics_from_confusion(confusion_matrices(y_true[index], y_pred[index], n_classes))
    tail = (1.0 - confidence) / 2.0
    return {
        name: [float(np.quantile(values[name], tail)), float(np.quantile(values[name], 1.0 - tail))] for name in METRICS
    }


def split_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str], bootstrap: Mapping[str, Any]
) -> dict[str, Any]:
    """:func:`classification_metrics` plus their bootstrap intervals (``ci``) as ``bootstrap``
    (resamples, confidence, seed) says: one split's entry of a metrics document."""
    metrics = classification_metrics(y_true, y_pred, classes)
    metrics["ci"] = bootstrap_intervals(
        y_true,
        y_pred,
        len(classes),
        int(bootstrap["resamples"]),
        float(bootstrap["confidence"]),
        int(bootstrap["seed"]),
    )
    return metrics


METRIC_DEFINITIONS = {"WA": "accuracy", "UA": "balanced accuracy (mean per-class recall)", "WF1": "support-weighted F1"}
BOOTSTRAP_METHOD = "percentile, utterances resampled with replacement"

# The metrics document (metrics/<variant>.json; schemas/metrics.schema.yaml): its keys in the
# order written. Every document has the keys of DOCUMENT_CORE; its kind (``fusion``) adds the
# keys of DOCUMENT_SECTIONS[kind].
DOCUMENT_KEYS = (
    "variant",
    "base_variant",
    "title",
    "fusion",
    "feature_sets",
    "classes",
    "selected",
    "selection",
    "late_weights",
    "ensemble",
    "vote",
    "splits",
    "per_classifier",
    "features",
    "lexicon_rules",
    "bootstrap",
    "metric_definitions",
)
DOCUMENT_CORE = (
    "variant",
    "title",
    "fusion",
    "feature_sets",
    "classes",
    "selected",
    "splits",
    "bootstrap",
    "metric_definitions",
)
# A variant that predicts by itself (classifiers, a neural head, the vote) reports how its result
# was chosen and every member's scores; a lexicon-rules row reports its base variant and the rules.
PREDICTOR_SECTIONS = ("selection", "late_weights", "ensemble", "per_classifier", "features")
DOCUMENT_SECTIONS = {
    "select": PREDICTOR_SECTIONS,
    "late": PREDICTOR_SECTIONS,
    "ensemble": PREDICTOR_SECTIONS,
    "head": PREDICTOR_SECTIONS,
    "vote": (*PREDICTOR_SECTIONS, "vote"),
    "rules": ("base_variant", "lexicon_rules"),
}


def headline_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """WA, UA and WF1 of one split's metrics (a ``per_classifier`` entry of a metrics document)."""
    return {name: metrics[name] for name in METRICS}


def metrics_document(
    variant: str,
    title: str,
    fusion: str,
    feature_sets: Sequence[str],
    classes: Sequence[str],
    selected: str,
    splits: Mapping[str, Mapping[str, Any]],
    bootstrap: Mapping[str, Any],
    **sections: Any,
) -> dict[str, Any]:
    """The metrics document of a variant (every kind: classical, head, vote, lexicon rules).

    ``splits``: split -> :func:`split_metrics`; ``bootstrap``: the resamples, confidence and seed
    behind their intervals; ``sections``: exactly the keys DOCUMENT_SECTIONS[fusion] names (None
    where a section does not apply to this variant, e.g. ``late_weights`` of an early fusion).
    """
    if fusion not in DOCUMENT_SECTIONS:
        raise ValueError(f"metrics document of {variant}: unknown fusion {fusion!r} (one of {list(DOCUMENT_SECTIONS)})")
    if set(sections) != set(DOCUMENT_SECTIONS[fusion]):
        raise ValueError(
            f"metrics document of {variant}: a {fusion!r} document has the sections "
            f"{sorted(DOCUMENT_SECTIONS[fusion])}, got {sorted(sections)}"
        )
    record = {key: cast(bootstrap[key]) for key, cast in (("resamples", int), ("confidence", float), ("seed", int))}
    # The rules' differences (before / after) are scored on paired resamples.
    method = BOOTSTRAP_METHOD + (" (differences: paired resamples)" if fusion == "rules" else "")
    values = {
        "variant": variant,
        "title": title,
        "fusion": fusion,
        "feature_sets": list(feature_sets),
        "classes": list(classes),
        "selected": selected,
        "splits": dict(splits),
        **sections,
        "bootstrap": {**record, "method": method},
        "metric_definitions": dict(METRIC_DEFINITIONS),
    }
    return {key: values[key] for key in DOCUMENT_KEYS if key in values}


def paired_bootstrap_difference(
    y_true: Sequence[int],
    before: Sequence[int],
    after: Sequence[int],
    n_classes: int,
    bootstrap: Mapping[str, Any],
) -> dict[str, dict[str, float]]:
    """WA / UA / WF1 of ``after`` minus those of ``before`` on the same utterances, with a paired
    percentile bootstrap interval (both predictions scored on the same resamples; ``bootstrap``:
    resamples, confidence, seed)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    before, after = np.asarray(before, dtype=np.int64), np.asarray(after, dtype=np.int64)
    rng = np.random.default_rng(int(bootstrap["seed"]))
    index = rng.integers(0, len(y_true), size=(int(bootstrap["resamples"]), len(y_true)))
    low = metrics_from_confusion(confusion_matrices(y_true[index], before[index], n_classes))
    high = metrics_from_confusion(confusion_matrices(y_true[index], after[index], n_classes))
    point_before = metrics_from_confusion(confusion_matrices(y_true[None], before[None], n_classes))
    point_after = metrics_from_confusion(confusion_matrices(y_true[None], after[None], n_classes))
    tail = (1.0 - float(bootstrap["confidence"])) / 2.0
    result = {}
    for name in METRICS:
        delta = high[name] - low[name]
        result[name] = {
            "difference": float(point_after[name][0] - point_before[name][0]),
            "ci": [float(np.quantile(delta, tail)), float(np.quantile(delta, 1.0 - tail))],
        }
    return result


def objective_score(name: str, y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """The value of objective ``name`` (higher is better) for class probabilities.

    Label-based objectives use the most probable class, as every prediction of the stage does.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    n_classes = probabilities.shape[1]
    if name == "neg_log_loss":
        picked = np.clip(probabilities[np.arange(len(y_true)), y_true], 1e-15, 1.0)
        return float(np.mean(np.log(picked)))
    y_pred = probabilities.argmax(axis=1)
    matrix = confusion_matrices(y_true, y_pred, n_classes)
    if name == "accuracy":
        return float(metrics_from_confusion(matrix)["WA"])
    if name == "balanced_accuracy":
        return float(metrics_from_confusion(matrix)["UA"])
    if name == "f1_weighted":
        return float(metrics_from_confusion(matrix)["WF1"])
    if name == "f1_macro":
        diagonal = np.diag(matrix).astype(float)
        support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
        denominator = support + predicted
        f1 = np.divide(2 * diagonal, denominator, out=np.zeros_like(diagonal), where=denominator > 0)
        # Over the classes that occur in truth or prediction, as scikit-learn's macro average.
        return float(f1[denominator > 0].mean())
    raise ValueError(f"unknown objective {name!r}; expected one of {list(OBJECTIVES)}")


def fold_mean_score(objective: str, y_true: np.ndarray, probabilities: np.ndarray, fold: np.ndarray) -> float:
    """``objective`` on each CV fold's held-out rows (``fold``: the fold of every row), averaged over folds."""
    fold = np.asarray(fold)
    return float(
        np.mean(
            [
                objective_score(objective, y_true[fold == k], probabilities[fold == k])
                for k in range(int(fold.max()) + 1)
            ]
        )
    )
