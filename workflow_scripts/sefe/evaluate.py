"""Acoustic-only evaluation of SEFE features (paper 4.3.3, Table 2 "Audio encoders (SEFE)").

A logistic regression on standardised pooled statistics is fitted on the train split only
and scored on every other split with the workflow's metrics (workflow_scripts.common.metrics:
WA, UA, WF1, confusion matrix, support). With several values of C, the regularisation is
chosen by cross-validation inside the train split on the workflow's speaker-grouped folds
(workflow_scripts.common.cv), as the test splits hold unseen speakers; no other split is read
before the model is fixed. Features and labels are joined by utt_id.
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from workflow_scripts.common.cv import cv_folds
from workflow_scripts.common.features import read_features, statistics_to_read
from workflow_scripts.common.files import write_json
from workflow_scripts.common.labels import encode_labels
from workflow_scripts.common.manifest import read_manifest
from workflow_scripts.common.metrics import classification_metrics
from workflow_scripts.common.rule import run_rule

log = logging.getLogger(__name__)


@dataclass
class LabelledSplit:
    """The features of one split joined to its manifest by utt_id."""

    utt_ids: list[str]
    x: np.ndarray
    labels: np.ndarray  # class names (what the classifier is fitted on and predicts)
    codes: np.ndarray  # indices into the task classes (what the metrics read)
    speakers: np.ndarray
    metadata: dict[str, Any]


def labelled_features(
    features_path: str, manifest_path: str, statistics: Sequence[str], classes: Sequence[str]
) -> LabelledSplit:
    """One split's features joined to its manifest by utt_id.

    Every manifest utterance must have features and vice versa; labels must be task classes.
    """
    utt_ids, matrix, metadata = read_features(features_path, statistics_to_read(features_path, statistics))
    manifest = read_manifest(manifest_path).set_index("utt_id")
    missing = sorted(set(manifest.index) - set(utt_ids))
    extra = sorted(set(utt_ids) - set(manifest.index))
    if missing or extra:
        raise ValueError(
            f"{features_path} and {manifest_path} disagree: utt_ids without features {missing[:5]} "
            f"({len(missing)}), features without a manifest row {extra[:5]} ({len(extra)})"
        )
    rows = manifest.loc[utt_ids]
    labels = rows["label"].to_numpy(dtype=object)
    codes = encode_labels(labels, classes, manifest_path, utt_ids)
    return LabelledSplit(utt_ids, matrix, labels, codes, rows["speaker"].to_numpy(dtype=object), metadata)


def build_classifier(C: float, cfg: Mapping[str, Any]) -> Pipeline:
    """StandardScaler + LogisticRegression as configured in sefe.evaluation."""
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(
            C=float(C), class_weight=cfg["class_weight"], max_iter=int(cfg["max_iter"]), random_state=int(cfg["seed"])
        ),
    )


def fit_classifier(
    x: np.ndarray, y: np.ndarray, speakers: np.ndarray, cfg: Mapping[str, Any], train_split: str
) -> tuple[Pipeline, dict[str, Any]]:
    """Fit on the train split; several C values are compared by speaker-grouped CV on it alone."""
    grid = [float(c) for c in cfg["C"]]
    if len(grid) == 1:
        return build_classifier(grid[0], cfg).fit(x, y), {"C": grid[0], "selection": "fixed"}
    folds = cv_folds(y, int(cfg["cv_folds"]), int(cfg["seed"]), speakers)
    disjoint = all(not set(speakers[fitted]) & set(speakers[held_out]) for fitted, held_out in folds)
    how = f"{len(folds)}-fold stratified CV on {train_split}{', speaker-disjoint' if disjoint else ''}"
    search = GridSearchCV(
        build_classifier(grid[0], cfg), {"logisticregression__C": grid}, scoring="balanced_accuracy", cv=folds
    )
    search.fit(x, y)
    scores = {str(c): round(float(s), 4) for c, s in zip(grid, search.cv_results_["mean_test_score"], strict=True)}
    selection = {"selection": how + ", balanced accuracy", "cv_UA": scores}
    return search.best_estimator_, {"C": float(search.best_params_["logisticregression__C"]), **selection}


def chance(support: Mapping[str, int], classes: Sequence[str]) -> dict[str, float]:
    """WA of always predicting the majority class, and UA of any constant guess."""
    return {"WA_majority": max(support.values()) / max(sum(support.values()), 1), "UA": 1.0 / len(classes)}


def score_split(model: Pipeline, split: LabelledSplit, classes: Sequence[str]) -> dict[str, Any]:
    """The workflow's metrics of ``model`` on ``split``, with the chance levels."""
    predicted = encode_labels(model.predict(split.x), classes, "the classifier's predictions")
    metrics = classification_metrics(split.codes, predicted, classes)
    return {**metrics, "chance": chance(metrics["support"], classes)}


def evaluate(
    cfg: Mapping[str, Any], classes: Sequence[str], inputs: Mapping[str, tuple[str, str]], train_split: str
) -> dict[str, Any]:
    """Fit on ``train_split``, score every other split; returns the evaluation record.

    ``inputs``: split -> (feature file, manifest), in the order the splits are reported.
    """
    if train_split not in inputs:
        raise ValueError(f"no {train_split!r} split among {list(inputs)}")
    statistics = statistics_to_read(inputs[train_split][0], cfg["statistics"])
    train = labelled_features(*inputs[train_split], statistics, classes)
    present = sorted(set(train.labels))
    if len(present) < 2:
        raise ValueError(f"{inputs[train_split][1]}: the train split has only the class(es) {present}")
    model, selection = fit_classifier(train.x, train.labels, train.speakers, cfg, train_split)
    metadata = train.metadata
    record: dict[str, Any] = {
        "backend": metadata.get("backend", metadata.get("model")),
        "checkpoint": metadata.get("checkpoint"),
        "dim": metadata["dim"],
        "statistics": statistics,
        "features": len(statistics) * int(metadata["dim"]),
        "classes": list(classes),
        "classifier": {"type": "StandardScaler + LogisticRegression", **dict(cfg), **selection},
        "train": {"split": train_split, "n": len(train.codes), "WA": score_split(model, train, classes)["WA"]},
        "splits": {},
    }
    if "layer_choice" in metadata:  # layer: auto - which layer, chosen how (sefe/layer_choice.py)
        record["layer_choice"] = metadata["layer_choice"]
    for name, paths in inputs.items():
        if name == train_split:
            continue
        split = labelled_features(*paths, statistics, classes)
        if len(split.codes) == 0:
            log.warning("split %s is empty: not scored", name)
            continue
        record["splits"][name] = score_split(model, split, classes)
    return record


def main(job: Any) -> None:
    """Entry point of the evaluate_sefe rule (``job``: the rule's ``snakemake`` object)."""
    splits = list(job.params.splits)
    features, manifests = list(job.input.features), list(job.input.manifests)
    if not len(splits) == len(features) == len(manifests):
        raise ValueError(f"splits, features and manifests differ in length: {splits}, {features}, {manifests}")
    inputs = {split: (f, m) for split, f, m in zip(splits, features, manifests, strict=True)}
    record = evaluate(job.params.evaluation, job.params.classes, inputs, job.params.train_split)
    backend = job.wildcards.backend
    if record["backend"] != backend:
        raise ValueError(f"{features[0]}: features of backend {record['backend']!r}, expected {backend!r}")
    write_json(job.output.evaluation, record)
    for split, m in record["splits"].items():
        log.info(
            "%s %s: WA %.4f UA %.4f WF1 %.4f (n=%d, majority WA %.4f)",
            backend,
            split,
            m["WA"],
            m["UA"],
            m["WF1"],
            m["n"],
            m["chance"]["WA_majority"],
        )


if __name__ == "__main__":
    run_rule(main)
