"""The fusion classifiers: Logistic Regression, Random Forest and Optuna-tuned XGBoost.

Each classifier is a scikit-learn pipeline (StandardScaler, then the model), so the scaling is
fitted on whatever the model is fitted on: the training split, or the training part of a
cross-validation fold. Only the training split is ever used for fitting, tuning and the
out-of-fold probabilities; the other splits are only predicted.

One entry point per classifier (``python -m workflow_scripts.fusion.classifiers lr|rf|xgboost``)
writes, for one feature set (acoustic, text or early = both concatenated):

* ``model.joblib`` (the fitted pipeline; XGBoost also ``model.json``, the booster);
* ``probabilities/<split>.parquet`` for every split (utt_id + one column per class);
* ``oof_train.parquet``: out-of-fold probabilities of the training split (utt_id, classes,
  fold), from the shared stratified folds, for naming the best classifier without a test split;
* ``summary.json``: hyperparameters, the training data, the features expected, CV scores
  (XGBoost: the Optuna study, with every trial in ``trials.csv``).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from workflow_scripts.fusion.pooling import Pooled, encode_labels, feature_spec, load_feature_set, write_probabilities
from workflow_scripts.common.metrics import OBJECTIVES, objective_score
from workflow_scripts.common.files import atomic_path, parse_json_argument, write_json
from workflow_scripts.common.logs import setup_logging

log = logging.getLogger(__name__)

CLASSIFIERS = ("lr", "rf", "xgboost")
TRAIN_SPLIT = "train"


def estimator_params(name: str, block: Mapping[str, Any]) -> dict[str, Any]:
    """The estimator's keyword arguments from a classifier's config block (XGBoost: the fixed ones)."""
    if name == "lr":
        return {"C": float(block["C"]), "class_weight": block["class_weight"], "max_iter": int(block["max_iter"])}
    if name == "rf":
        return {"n_estimators": int(block["n_estimators"]), "max_depth": block["max_depth"],
                "min_samples_leaf": int(block["min_samples_leaf"]), "class_weight": block["class_weight"],
                "random_state": int(block["seed"])}
    if name == "xgboost":
        return {**block["params"], "random_state": int(block["seed"])}
    raise ValueError(f"unknown classifier {name!r}; expected one of {list(CLASSIFIERS)}")


def build_classifier(name: str, params: Mapping[str, Any], threads: int = 1) -> Pipeline:
    """An unfitted pipeline: StandardScaler then the classifier ``name`` with ``params``."""
    if name == "lr":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(**params)
    elif name == "rf":
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(**params, n_jobs=threads)
    elif name == "xgboost":
        from xgboost import XGBClassifier

        model = XGBClassifier(**params, n_jobs=threads)
    else:
        raise ValueError(f"unknown classifier {name!r}; expected one of {list(CLASSIFIERS)}")
    return Pipeline([("scale", StandardScaler()), ("model", model)])


def set_threads(pipeline: Pipeline, threads: int) -> Pipeline:
    """Use ``threads`` cores in the pipeline's model where that parallelises (the tree ensembles)."""
    if "n_estimators" in pipeline.named_steps["model"].get_params():
        pipeline.set_params(model__n_jobs=threads)
    return pipeline


def predict_proba(pipeline: Pipeline, X: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities in task-class order (columns for classes unseen in fitting are 0)."""
    raw = pipeline.predict_proba(X)
    result = np.zeros((X.shape[0], n_classes), dtype=np.float64)
    result[:, pipeline.classes_.astype(int)] = raw
    return result


def stratified_folds(y: np.ndarray, folds: int, seed: int, n_classes: int,
                     groups: Sequence[str] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified K-fold split of the training labels: (fit rows, held-out rows) per fold.

    With ``groups`` (speakers), no group is on both sides of a fold, as the test splits hold
    unseen speakers; otherwise the held-out rows share speakers with the fitted ones and the
    out-of-fold scores that choose hyperparameters, classifiers and weights are optimistic.
    """
    counts = np.bincount(y, minlength=n_classes)
    if counts.min() < folds:
        raise ValueError(f"stratified {folds}-fold CV needs at least {folds} training utterances of every class; "
                         f"the training split has {counts.tolist()} per class")
    if groups is not None:
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros((len(y), 1)), y, np.asarray(groups)))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((len(y), 1)), y))


def speaker_groups(pooled: Pooled, folds: int, enabled: bool) -> list[str] | None:
    """The speakers to group CV folds by, or None when disabled, unknown for some row, or too few."""
    speakers = pooled.speakers
    if not enabled or not speakers or any(not speaker for speaker in speakers):
        return None
    if len(set(speakers)) < folds:
        log.warning("%d speakers in the training split, fewer than %d folds: folds not grouped by speaker",
                    len(set(speakers)), folds)
        return None
    return list(speakers)


@dataclass
class CrossValidation:
    """Out-of-fold probabilities, the fold of every row and the per-fold scores of one objective."""

    probabilities: np.ndarray
    fold: np.ndarray
    fold_scores: list[float]

    @property
    def score(self) -> float:
        return float(np.mean(self.fold_scores))


def cross_validate(pipeline: Pipeline, X: np.ndarray, y: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]],
                   n_classes: int, objective: str) -> CrossValidation:
    """Fit a clone per fold on its fitting rows and predict its held-out rows."""
    probabilities = np.zeros((len(y), n_classes))
    fold_of_row = np.full(len(y), -1, dtype=np.int64)
    scores = []
    for number, (fit_rows, held_out) in enumerate(folds):
        model = clone(pipeline).fit(X[fit_rows], y[fit_rows])
        probabilities[held_out] = predict_proba(model, X[held_out], n_classes)
        fold_of_row[held_out] = number
        scores.append(objective_score(objective, y[held_out], probabilities[held_out]))
    return CrossValidation(probabilities, fold_of_row, scores)


def suggest_params(trial: Any, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Draw one point of the search space: name -> {type: int|float, low, high, log}."""
    params = {}
    for name, spec in space.items():
        if spec["type"] == "int":
            params[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log", False)))
        else:
            params[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]),
                                               log=bool(spec.get("log", False)))
    return params


@dataclass
class TuningResult:
    """The best XGBoost hyperparameters, its cross-validation and the whole study as a table."""

    params: dict[str, Any]
    cv: CrossValidation
    trials: pd.DataFrame
    best_trial: int


def tune_xgboost(X: np.ndarray, y: np.ndarray, block: Mapping[str, Any], folds: Sequence[tuple[np.ndarray, np.ndarray]],
                 n_classes: int, threads: int) -> TuningResult:
    """Optuna (seeded TPE) over ``block['space']``, maximising the mean CV score of ``block['objective']``.

    Only ``X``/``y`` (the training split) are seen. The best trial's out-of-fold probabilities
    are kept: the same folds and seeds would reproduce them exactly.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fixed = estimator_params("xgboost", block)
    runs: dict[int, CrossValidation] = {}

    def objective(trial: Any) -> float:
        params = {**fixed, **suggest_params(trial, block["space"])}
        result = cross_validate(build_classifier("xgboost", params, threads), X, y, folds, n_classes, block["objective"])
        runs[trial.number] = result
        trial.set_user_attr("fold_scores", result.fold_scores)
        log.info("trial %d: %s = %.4f %s", trial.number, block["objective"], result.score,
                 {k: v for k, v in trial.params.items()})
        return result.score

    sampler = optuna.samplers.TPESampler(seed=int(block["seed"]))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=int(block["trials"]))
    best = study.best_trial
    trials = study.trials_dataframe(attrs=("number", "value", "params", "user_attrs", "duration", "state"))
    trials["duration"] = trials["duration"].dt.total_seconds()
    return TuningResult({**fixed, **best.params}, runs[best.number], trials, best.number)


def objective_scores(y: np.ndarray, cv: CrossValidation) -> dict[str, float]:
    """Every objective as the mean over the CV folds (the numbers model selection compares)."""
    return {
        name: float(np.mean([objective_score(name, y[cv.fold == k], cv.probabilities[cv.fold == k])
                             for k in range(cv.fold.max() + 1)]))
        for name in OBJECTIVES
    }


def train_classifier(name: str, block: Mapping[str, Any], cv_block: Mapping[str, Any], data: Mapping[str, Pooled],
                     classes: Sequence[str], threads: int) -> tuple[Pipeline, CrossValidation, dict[str, Any],
                                                                    pd.DataFrame | None]:
    """Fit one classifier on the training split: (fitted pipeline, out-of-fold CV, summary, trials)."""
    if TRAIN_SPLIT not in data:
        raise ValueError(f"no {TRAIN_SPLIT!r} split among the pooled inputs (have {sorted(data)})")
    train = data[TRAIN_SPLIT]
    y = encode_labels(train.labels, classes, f"{TRAIN_SPLIT} labels")
    groups = speaker_groups(train, int(cv_block["folds"]), bool(cv_block.get("group_by_speaker", True)))
    folds = stratified_folds(y, int(cv_block["folds"]), int(cv_block["seed"]), len(classes), groups)
    summary: dict[str, Any] = {"classifier": name, "cv_grouped_by": "speaker" if groups else "none"}
    trials = None
    if name == "xgboost":
        tuning = tune_xgboost(train.X, y, block, folds, len(classes), threads)
        params, cv, trials = tuning.params, tuning.cv, tuning.trials
        summary["tuning"] = {
            "sampler": "TPESampler", "seed": int(block["seed"]), "trials": int(block["trials"]),
            "objective": block["objective"], "best_trial": tuning.best_trial, "best_value": cv.score,
            "space": block["space"], "folds": int(cv_block["folds"]), "data": TRAIN_SPLIT,
        }
    else:
        params = estimator_params(name, block)
        cv = cross_validate(build_classifier(name, params, threads), train.X, y, folds, len(classes), "balanced_accuracy")
    model = build_classifier(name, params, threads).fit(train.X, y)
    summary.update({
        "hyperparameters": params,
        "train": {"split": TRAIN_SPLIT, "utterances": len(y),
                  "per_class": {c: int((y == i).sum()) for i, c in enumerate(classes)}},
        "features": feature_spec(train),
        "cv": {"folds": int(cv_block["folds"]), "seed": int(cv_block["seed"]), "data": TRAIN_SPLIT,
               "scores": objective_scores(y, cv)},
    })
    return model, cv, summary, trials


def write_outputs(out_dir: Path, name: str, model: Pipeline, cv: CrossValidation, summary: dict[str, Any],
                  trials: pd.DataFrame | None, data: Mapping[str, Pooled], classes: Sequence[str]) -> None:
    """The model, probabilities of every split, out-of-fold probabilities, trials and summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "model.joblib") as tmp:
        joblib.dump(model, tmp)
    if name == "xgboost":
        with atomic_path(out_dir / "model.json") as tmp:
            model.named_steps["model"].save_model(tmp)
    if trials is not None:
        with atomic_path(out_dir / "trials.csv") as tmp:
            trials.to_csv(tmp, index=False)
    for split, pooled in data.items():
        write_probabilities(out_dir / "probabilities" / f"{split}.parquet", pooled.utt_ids,
                            predict_proba(model, pooled.X, len(classes)), classes)
    train = data[TRAIN_SPLIT]
    oof = pd.DataFrame(cv.probabilities, columns=list(classes))
    oof.insert(0, "utt_id", train.utt_ids)
    oof["fold"] = cv.fold
    with atomic_path(out_dir / "oof_train.parquet") as tmp:
        oof.to_parquet(tmp, index=False)
    write_json(out_dir / "summary.json", summary)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the train_lr, train_rf and tune_xgboost rules."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("classifier", choices=CLASSIFIERS)
    parser.add_argument("--config", required=True, help="the classifier's config block as JSON")
    parser.add_argument("--cv", required=True, help="the fusion.cv block as JSON (folds, seed)")
    parser.add_argument("--classes", required=True, nargs="+")
    parser.add_argument("--feature-set", required=True)
    parser.add_argument("--pooled", required=True, nargs="+", help="pooled files of every split (and modality)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    setup_logging()
    from threadpoolctl import threadpool_limits

    block = parse_json_argument(args.config)
    cv_block = parse_json_argument(args.cv, "--cv")
    started = time.time()
    with threadpool_limits(limits=args.threads):
        data = load_feature_set(args.pooled)
        log.info("%s on %s: %s", args.classifier, args.feature_set,
                 {split: pooled.X.shape for split, pooled in data.items()})
        model, cv, summary, trials = train_classifier(args.classifier, block, cv_block, data, args.classes, args.threads)
        summary["feature_set"] = args.feature_set
        summary["classes"] = list(args.classes)
        summary["seconds"] = round(time.time() - started, 2)
        write_outputs(Path(args.out_dir), args.classifier, model, cv, summary, trials, data, args.classes)
    scores = summary["cv"]["scores"]
    log.info("%s on %s: CV balanced accuracy %.4f, accuracy %.4f (%.1f s)", args.classifier, args.feature_set,
             scores["balanced_accuracy"], scores["accuracy"], summary["seconds"])


if __name__ == "__main__":
    main()
