"""Acoustic-only evaluation of SEFE features (paper 4.3.3, Table 2 "Audio encoders (SEFE)").

A logistic regression on standardised pooled statistics is fitted on the train split only
and scored on every other split with WA (accuracy), UA (balanced accuracy: mean recall over
classes) and WF1 (support-weighted F1). With several values of C, the regularisation is chosen
by cross-validation inside the train split, folds grouped by speaker when speakers are known
(as the test splits hold unseen speakers); no other split is read before the model is fixed.
Features and labels are joined by utt_id.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from workflow_scripts.common.features import read_features
from workflow_scripts.common.files import parse_json_argument, write_json
from workflow_scripts.common.logs import setup_logging
from workflow_scripts.common.manifest import read_manifest

log = logging.getLogger(__name__)


def labelled_features(features_path: str, manifest_path: str, statistics: Sequence[str],
                      classes: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(utt_ids, X, labels, speakers, metadata) of one split, joined to the manifest by utt_id.

    Every manifest utterance must have features and vice versa; labels must be task classes.
    """
    utt_ids, matrix, metadata = read_features(features_path, statistics)
    manifest = read_manifest(manifest_path).set_index("utt_id")
    missing = sorted(set(manifest.index) - set(utt_ids))
    extra = sorted(set(utt_ids) - set(manifest.index))
    if missing or extra:
        raise ValueError(f"{features_path} and {manifest_path} disagree: utt_ids without features {missing[:5]} "
                         f"({len(missing)}), features without a manifest row {extra[:5]} ({len(extra)})")
    rows = manifest.loc[utt_ids]
    unknown = sorted(set(rows["label"]) - set(classes))
    if unknown:
        raise ValueError(f"{manifest_path}: labels {unknown} are not task classes {list(classes)}")
    return (utt_ids, matrix, rows["label"].to_numpy(dtype=object), rows["speaker"].to_numpy(dtype=object),
            metadata)


def build_classifier(C: float, cfg: Mapping[str, Any]) -> Pipeline:
    """StandardScaler + LogisticRegression as configured in sefe.evaluation."""
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=float(C), class_weight=cfg["class_weight"], max_iter=int(cfg["max_iter"]),
                           random_state=int(cfg["seed"])),
    )


def fit_classifier(x: np.ndarray, y: np.ndarray, speakers: np.ndarray, cfg: Mapping[str, Any]
                   ) -> tuple[Pipeline, dict[str, Any]]:
    """Fit on the train split; several C values are compared by (speaker-grouped) CV on it alone."""
    grid = [float(c) for c in cfg["C"]]
    if len(grid) == 1:
        return build_classifier(grid[0], cfg).fit(x, y), {"C": grid[0], "selection": "fixed"}
    seed = int(cfg["seed"])
    groups = speakers if all(speakers) else None
    n_groups = len(set(speakers)) if groups is not None else 0
    if groups is not None and n_groups >= 2:
        folds = min(int(cfg["cv_folds"]), n_groups)
        cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        how = f"{folds}-fold StratifiedGroupKFold by speaker on train"
    else:
        groups = None
        folds = int(cfg["cv_folds"])
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        how = f"{folds}-fold StratifiedKFold on train"
    search = GridSearchCV(build_classifier(grid[0], cfg), {"logisticregression__C": grid},
                          scoring="balanced_accuracy", cv=cv, refit=True)
    search.fit(x, y, groups=groups)
    scores = {str(c): round(float(s), 4) for c, s in zip(grid, search.cv_results_["mean_test_score"])}
    return search.best_estimator_, {"C": float(search.best_params_["logisticregression__C"]),
                                    "selection": how + ", balanced accuracy", "cv_UA": scores}


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> dict[str, Any]:
    """WA, UA and WF1 as the paper defines them, plus the confusion matrix and support."""
    y_true = np.asarray(y_true, dtype=object)
    counts = {c: int((y_true == c).sum()) for c in classes}
    return {
        "WA": float(accuracy_score(y_true, y_pred)),
        "UA": float(balanced_accuracy_score(y_true, y_pred)),
        "WF1": float(f1_score(y_true, y_pred, labels=list(classes), average="weighted", zero_division=0)),
        "support": counts,
        "confusion_matrix": {"labels": list(classes),
                             "rows_true_cols_pred": confusion_matrix(y_true, y_pred, labels=list(classes)).tolist()},
        "chance": {"WA_majority": max(counts.values()) / max(len(y_true), 1), "UA": 1.0 / len(classes)},
    }


def evaluate(cfg: Mapping[str, Any], classes: Sequence[str], splits: Sequence[str], features: Sequence[str],
             manifests: Sequence[str], train_split: str = "train") -> dict[str, Any]:
    """Fit on ``train_split``, score every other split; returns the evaluation record."""
    if not len(splits) == len(features) == len(manifests):
        raise ValueError(f"--splits, --features and --manifests differ in length: "
                         f"{len(splits)}, {len(features)}, {len(manifests)}")
    paths = {s: (f, m) for s, f, m in zip(splits, features, manifests)}
    if train_split not in paths:
        raise ValueError(f"no {train_split!r} split among {list(splits)}")
    statistics = list(cfg["statistics"])
    _, x_train, y_train, speakers, metadata = labelled_features(*paths[train_split], statistics, classes)
    present = sorted(set(y_train))
    if len(present) < 2:
        raise ValueError(f"{paths[train_split][1]}: the train split has only the class(es) {present}")
    model, selection = fit_classifier(x_train, y_train, speakers, cfg)
    record: dict[str, Any] = {
        "backend": metadata.get("backend", metadata.get("model")),
        "checkpoint": metadata.get("checkpoint"),
        "dim": metadata["dim"],
        "statistics": statistics,
        "features": len(statistics) * int(metadata["dim"]),
        "classifier": {"type": "StandardScaler + LogisticRegression", **dict(cfg), **selection},
        "train": {"split": train_split, "utterances": int(len(y_train)),
                  "WA": float(accuracy_score(y_train, model.predict(x_train)))},
        "splits": {},
    }
    for split in splits:
        if split == train_split:
            continue
        _, x, y, _, _ = labelled_features(*paths[split], statistics, classes)
        if len(y) == 0:
            log.warning("split %s is empty: not scored", split)
            continue
        record["splits"][split] = {"utterances": int(len(y)), **classification_metrics(y, model.predict(x), classes)}
    return record


def main(argv: list[str] | None = None) -> None:
    """Entry point of the evaluate_sefe rule."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="the sefe.evaluation block as JSON")
    parser.add_argument("--backend", required=True)
    parser.add_argument("--classes", required=True, nargs="+")
    parser.add_argument("--splits", required=True, nargs="+", help="split names, train first")
    parser.add_argument("--features", required=True, nargs="+", help="feature parquet per split, same order")
    parser.add_argument("--manifests", required=True, nargs="+", help="speech manifest per split, same order")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    setup_logging()
    cfg = parse_json_argument(args.config)
    record = evaluate(cfg, args.classes, args.splits, args.features, args.manifests)
    if record["backend"] != args.backend:
        raise SystemExit(f"{args.features[0]}: features of backend {record['backend']!r}, expected {args.backend!r}")
    write_json(args.output, record)
    for split, m in record["splits"].items():
        log.info("%s %s: WA %.4f UA %.4f WF1 %.4f (n=%d, majority WA %.4f)", args.backend, split, m["WA"], m["UA"],
                 m["WF1"], m["utterances"], m["chance"]["WA_majority"])


if __name__ == "__main__":
    main()
