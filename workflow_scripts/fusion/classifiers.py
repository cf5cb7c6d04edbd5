"""The fusion classifiers: Logistic Regression, Random Forest and Optuna-tuned XGBoost.

Each classifier is a scikit-learn pipeline (StandardScaler, then the model), so the scaling is
fitted on whatever the model is fitted on: the training split, or the training part of a
cross-validation fold. Only the training split is ever used for fitting, tuning and the
out-of-fold probabilities; the other splits are only predicted.

The train_classifier rule runs this module for one classifier (``{classifier}``: lr, rf or
xgboost) and one feature set (acoustic, text or early = both concatenated). A classifier whose
config block has a search ``space`` (XGBoost) is tuned by Optuna; the others (LR, RF) are
cross-validated in their configured form. Every classifier writes the same files:

* ``model.joblib``: the fitted pipeline;
* ``trials.csv``: the configurations tried with their CV score (XGBoost: every Optuna trial;
  LR and RF, which are not tuned: one row, their fixed configuration);
* ``probabilities/<split>.parquet`` for every split (utt_id + one column per class);
* ``oof_train.parquet``: out-of-fold probabilities of the training split (utt_id, classes,
  fold), from the shared stratified folds, for naming the best classifier without a test split;
* ``summary.json``: hyperparameters, the training data, the features expected, CV scores
  (XGBoost: the Optuna study).
"""

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from workflow_scripts.common.cv import Folds, cv_folds
from workflow_scripts.common.files import atomic_path, write_json
from workflow_scripts.common.labels import encode_labels
from workflow_scripts.common.metrics import OBJECTIVES, fold_mean_score
from workflow_scripts.common.names import CLASSIFIERS
from workflow_scripts.common.rule import run_rule
from workflow_scripts.fusion.pooling import Pooled, feature_spec, load_feature_set, write_probabilities

log = logging.getLogger(__name__)

# The score in trials.csv of the classifiers that are not tuned (XGBoost: its block's objective).
FIXED_OBJECTIVE = "balanced_accuracy"


def estimator_params(name: str, block: Mapping[str, Any]) -> dict[str, Any]:
    """The estimator's keyword arguments from a classifier's config block (XGBoost: the fixed ones)."""
    if name == "lr":
        return {"C": float(block["C"]), "class_weight": block["class_weight"], "max_iter": int(block["max_iter"])}
    if name == "rf":
        return {
            "n_estimators": int(block["n_estimators"]),
            "max_depth": block["max_depth"],
            "min_samples_leaf": int(block["min_samples_leaf"]),
            "class_weight": block["class_weight"],
            "random_state": int(block["seed"]),
        }
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


def training_folds(train: Pooled, y: np.ndarray, folds: int, seed: int, group_by_speaker: bool) -> tuple[Folds, str]:
    """The CV folds of the training split (common.cv.cv_folds), grouped by the manifest's speakers
    when ``group_by_speaker`` (held-out rows are then unseen speakers, as in the test splits), and
    what they are grouped by: "speaker" when no speaker is on both sides of a fold, else "none"."""
    speakers = train.speakers if group_by_speaker else None
    found = cv_folds(y, folds, seed, speakers)
    if not speakers:
        return found, "none"
    names = np.asarray(speakers)
    disjoint = all(not set(names[fit]) & set(names[held_out]) for fit, held_out in found)
    return found, "speaker" if disjoint else "none"


@dataclass
class CrossValidation:
    """Out-of-fold probabilities of the training rows and the fold each row was held out in."""

    probabilities: np.ndarray
    fold: np.ndarray

    def score(self, objective: str, y: np.ndarray) -> float:
        """``objective`` averaged over the folds' held-out rows."""
        return fold_mean_score(objective, y, self.probabilities, self.fold)


def cross_validate(pipeline: Pipeline, X: np.ndarray, y: np.ndarray, folds: Folds, n_classes: int) -> CrossValidation:
    """Fit a clone per fold on its fitting rows and predict its held-out rows."""
    probabilities = np.zeros((len(y), n_classes))
    fold_of_row = np.full(len(y), -1, dtype=np.int64)
    for number, (fit_rows, held_out) in enumerate(folds):
        model = clone(pipeline).fit(X[fit_rows], y[fit_rows])
        probabilities[held_out] = predict_proba(model, X[held_out], n_classes)
        fold_of_row[held_out] = number
    return CrossValidation(probabilities, fold_of_row)


def suggest_params(trial: Any, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Draw one point of the search space: name -> {type: int|float, low, high, log}.

    Names are drawn in sorted order, so the seeded search does not depend on the config's key order.
    """
    params = {}
    for name, spec in sorted(space.items()):
        if spec["type"] == "int":
            params[name] = trial.suggest_int(
                name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log", False))
            )
        else:
            params[name] = trial.suggest_float(
                name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log", False))
            )
    return params


@dataclass
class Search:
    """A classifier's chosen hyperparameters, their cross-validation, every configuration tried
    (the trials table) and, for a tuned classifier, the record of its tuning."""

    params: dict[str, Any]
    cv: CrossValidation
    trials: pd.DataFrame
    tuning: dict[str, Any] | None = None


def fixed_configuration(
    name: str, block: Mapping[str, Any], X: np.ndarray, y: np.ndarray, folds: Folds, n_classes: int, threads: int
) -> Search:
    """An untuned classifier (LR, RF): its configured hyperparameters, cross-validated once (one row of trials)."""
    started = time.time()
    params = estimator_params(name, block)
    cv = cross_validate(build_classifier(name, params, threads), X, y, folds, n_classes)
    row = {
        "number": 0,
        "value": cv.score(FIXED_OBJECTIVE, y),
        **{f"params_{k}": v for k, v in params.items()},
        "duration": time.time() - started,
        "state": "COMPLETE",
    }
    return Search(params, cv, pd.DataFrame([row]))


def tune(
    name: str, block: Mapping[str, Any], X: np.ndarray, y: np.ndarray, folds: Folds, n_classes: int, threads: int
) -> Search:
    """Optuna (seeded TPE) over ``block['space']``, maximising the mean CV score of ``block['objective']``
    (XGBoost: the block's ``params`` fixed, the space searched).

    Only ``X``/``y`` (the training split) are seen. The best trial's out-of-fold probabilities
    are kept: the same folds and seeds would reproduce them exactly.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fixed = estimator_params(name, block)
    runs: dict[int, CrossValidation] = {}

    def objective(trial: Any) -> float:
        params = {**fixed, **suggest_params(trial, block["space"])}
        runs[trial.number] = cv = cross_validate(build_classifier(name, params, threads), X, y, folds, n_classes)
        value = cv.score(block["objective"], y)
        log.info("trial %d: %s = %.4f %s", trial.number, block["objective"], value, dict(trial.params))
        return value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=int(block["seed"])))
    study.optimize(objective, n_trials=int(block["trials"]))
    best = study.best_trial
    trials = study.trials_dataframe(attrs=("number", "value", "params", "user_attrs", "duration", "state"))
    trials["duration"] = trials["duration"].dt.total_seconds()
    tuning = {
        "sampler": "TPESampler",
        "seed": int(block["seed"]),
        "trials": int(block["trials"]),
        "objective": block["objective"],
        "best_trial": best.number,
        "best_value": float(best.value),
        "space": block["space"],
        "folds": len(folds),
    }
    return Search({**fixed, **best.params}, runs[best.number], trials, tuning)


def train_classifier(
    name: str,
    block: Mapping[str, Any],
    cv_block: Mapping[str, Any],
    train: Pooled,
    classes: Sequence[str],
    train_split: str,
    threads: int,
) -> tuple[Pipeline, Search, dict[str, Any]]:
    """Fit one classifier on the training split ``train``: (fitted pipeline, its search, summary)."""
    y = encode_labels(train.labels, classes, f"{train_split} labels", train.utt_ids)
    folds, grouped_by = training_folds(
        train, y, int(cv_block["folds"]), int(cv_block["seed"]), bool(cv_block["group_by_speaker"])
    )
    if "space" in block:  # tuned (XGBoost); LR and RF have a fixed configuration
        search = tune(name, block, train.X, y, folds, len(classes), threads)
    else:
        search = fixed_configuration(name, block, train.X, y, folds, len(classes), threads)
    model = build_classifier(name, search.params, threads).fit(train.X, y)
    summary: dict[str, Any] = {"classifier": name, "cv_grouped_by": grouped_by}
    if search.tuning is not None:
        summary["tuning"] = {**search.tuning, "data": train_split}
    summary.update(
        {
            "hyperparameters": search.params,
            "train": {
                "split": train_split,
                "utterances": len(y),
                "per_class": {c: int((y == i).sum()) for i, c in enumerate(classes)},
            },
            "features": feature_spec(train),
            "cv": {
                "folds": len(folds),
                "seed": int(cv_block["seed"]),
                "data": train_split,
                "scores": {objective: search.cv.score(objective, y) for objective in OBJECTIVES},
            },
        }
    )
    return model, search, summary


def write_outputs(
    output: Any,
    model: Pipeline,
    search: Search,
    summary: dict[str, Any],
    data: Mapping[str, Pooled],
    splits: Sequence[str],
    train_split: str,
    classes: Sequence[str],
) -> None:
    """The model, trials, probabilities of every split (``output.probabilities`` in ``splits``
    order), out-of-fold probabilities and summary, at the rule's output paths."""
    with atomic_path(output.model) as tmp:
        joblib.dump(model, tmp)
    with atomic_path(output.trials) as tmp:
        search.trials.to_csv(tmp, index=False)
    for split, path in zip(splits, output.probabilities, strict=True):
        write_probabilities(path, data[split].utt_ids, predict_proba(model, data[split].X, len(classes)), classes)
    oof = pd.DataFrame(search.cv.probabilities, columns=list(classes))
    oof.insert(0, "utt_id", data[train_split].utt_ids)
    oof["fold"] = search.cv.fold
    with atomic_path(output.oof) as tmp:
        oof.to_parquet(tmp, index=False)
    write_json(output.summary, summary)


def main(job: Any) -> None:
    """Entry point of the train_classifier rule (``job``: the rule's ``snakemake`` object)."""
    from threadpoolctl import threadpool_limits

    name, feature_set = job.wildcards.classifier, job.wildcards.feature_set
    classes, splits, train_split = list(job.params.classes), list(job.params.splits), job.params.train_split
    started = time.time()
    with threadpool_limits(limits=job.threads):
        data = load_feature_set(job.input.pooled)
        if sorted(data) != sorted(splits):
            raise ValueError(f"pooled inputs cover splits {sorted(data)}, expected {splits}")
        log.info("%s on %s: %s", name, feature_set, {split: pooled.X.shape for split, pooled in data.items()})
        model, search, summary = train_classifier(
            name, job.params.classifier, job.params.cv, data[train_split], classes, train_split, job.threads
        )
        summary.update(feature_set=feature_set, classes=classes, seconds=round(time.time() - started, 2))
        write_outputs(job.output, model, search, summary, data, splits, train_split, classes)
    scores = summary["cv"]["scores"]
    log.info(
        "%s on %s: CV balanced accuracy %.4f, accuracy %.4f (%.1f s)",
        name,
        feature_set,
        scores["balanced_accuracy"],
        scores["accuracy"],
        summary["seconds"],
    )


if __name__ == "__main__":
    run_rule(main)
