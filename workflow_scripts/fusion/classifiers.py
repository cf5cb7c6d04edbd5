"""The fusion classifiers: Logistic Regression, Random Forest and Optuna-tuned XGBoost.

Each classifier is a scikit-learn pipeline: Logistic Regression behind a StandardScaler (so the
scaling is fitted on whatever the model is fitted on: the training split, or the training part
of a cross-validation fold); the tree ensembles alone (a tree splits on thresholds, which scaling
does not change). Only the training split is ever used for fitting, tuning, early stopping and
the out-of-fold probabilities; the other splits are only predicted.

XGBoost's tuning (:class:`BoostedFolds`) builds each fold's quantized matrices once and reuses
them in every trial, stops each fold's boosting early on that fold's held-out rows (training
rows, ``n_estimators`` the upper bound) and lets an Optuna pruner stop unpromising trials after
any fold.

The train_classifier rule runs this module for one classifier (``{classifier}``: lr, rf or
xgboost) and one feature set (acoustic, text or early = both concatenated). A classifier whose
config block has a search ``space`` (XGBoost) is tuned by Optuna; the others (LR, RF) are
cross-validated in their configured form. Every classifier writes the same files:

* ``model.skops``: the fitted pipeline (common/model_files.py: skops, XGBoost's booster as its own
  UBJSON inside), with its SHA-256 record ``model.skops.sha256`` (and ``summary.json.sha256``);
* ``trials.csv``: the configurations tried with their CV score (XGBoost: every Optuna trial;
  LR and RF, which are not tuned: one row, their fixed configuration);
* ``probabilities/<split>.parquet`` for every split (utt_id + one column per class);
* ``oof_train.parquet``: out-of-fold probabilities of the training split (utt_id, classes,
  fold), from the shared stratified folds, for naming the best classifier without a test split;
* ``summary.json``: hyperparameters, the training data, the features expected, CV scores
  (XGBoost: the Optuna study).
"""

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# OpenMP threads (XGBoost, scikit-learn) that spin while waiting stall ~10-40x on a busy or shared
# CPU (measured: 2 threads on 2 loaded cores); passive waiting costs little on an idle one. Read
# once, when the OpenMP runtime loads: so before scikit-learn or XGBoost is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from workflow_scripts.common.checksums import write_checked_json
from workflow_scripts.common.cv import Folds, cv_folds
from workflow_scripts.common.files import atomic_path
from workflow_scripts.common.labels import encode_labels
from workflow_scripts.common.metrics import OBJECTIVES, fold_mean_score
from workflow_scripts.common.model_files import save_estimator
from workflow_scripts.common.names import AUGMENTED_ID_MARK, is_augmented_copy
from workflow_scripts.common.registry import Spec, lookup, registry
from workflow_scripts.common.rule import run_rule
from workflow_scripts.fusion.pooling import Pooled, feature_spec, load_feature_set, write_probabilities

log = logging.getLogger(__name__)

# The score in trials.csv of the classifiers that are not tuned (XGBoost: its block's objective).
FIXED_OBJECTIVE = "balanced_accuracy"


def lr_params(block: Mapping[str, Any]) -> dict[str, Any]:
    """Logistic Regression's keyword arguments from fusion.lr."""
    return {
        "C": float(block["C"]),
        "class_weight": block["class_weight"],
        "max_iter": int(block["max_iter"]),
        "solver": block["solver"],
    }


def rf_params(block: Mapping[str, Any]) -> dict[str, Any]:
    """Random Forest's keyword arguments from fusion.rf."""
    return {
        "n_estimators": int(block["n_estimators"]),
        "max_depth": block["max_depth"],
        "min_samples_leaf": int(block["min_samples_leaf"]),
        "class_weight": block["class_weight"],
        "random_state": int(block["seed"]),
    }


def xgboost_params(block: Mapping[str, Any]) -> dict[str, Any]:
    """XGBoost's fixed keyword arguments from fusion.xgboost (its search space is tuned apart)."""
    return {**block["params"], "random_state": int(block["seed"])}


@dataclass(frozen=True)
class ClassifierSpec(Spec):
    """A fusion classifier (names.CLASSIFIERS): the common spec (``implementation``: the estimator
    class), its keyword arguments from its config block, whether it sits behind a StandardScaler, and
    whether it parallelises over ``n_jobs`` threads, and whether its tuning trains through
    :class:`BoostedFolds` (XGBoost's native training)."""

    params: Callable[[Mapping[str, Any]], dict[str, Any]]
    scaled: bool
    threaded: bool
    boosted: bool = False


# Logistic Regression behind a StandardScaler; the tree ensembles alone (scaling changes no threshold).
CLASSIFIER_SPECS: dict[str, ClassifierSpec] = registry(
    ClassifierSpec("lr", False, "sklearn.linear_model:LogisticRegression", lr_params, scaled=True, threaded=False),
    ClassifierSpec("rf", False, "sklearn.ensemble:RandomForestClassifier", rf_params, scaled=False, threaded=True),
    ClassifierSpec(
        "xgboost", False, "xgboost:XGBClassifier", xgboost_params, scaled=False, threaded=True, boosted=True
    ),
)


def estimator_params(name: str, block: Mapping[str, Any]) -> dict[str, Any]:
    """The estimator's keyword arguments from a classifier's config block (XGBoost: the fixed ones)."""
    return lookup(CLASSIFIER_SPECS, name, "classifier").params(block)


def build_classifier(name: str, params: Mapping[str, Any], threads: int = 1) -> Pipeline:
    """An unfitted pipeline: the classifier ``name`` with ``params``, behind a StandardScaler for
    Logistic Regression (the tree ensembles need no scaling)."""
    spec = lookup(CLASSIFIER_SPECS, name, "classifier")
    model = spec.load()(**params, **({"n_jobs": threads} if spec.threaded else {}))
    return Pipeline([*([("scale", StandardScaler())] if spec.scaled else []), ("model", model)])


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


def folds_with_copies(y: np.ndarray, utt_ids: list[str], folds: int, seed: int, speakers: list[str] | None) -> Folds:
    """CV folds (common.cv.cv_folds) of the training rows in which augmented copies (acoustic_aug,
    challenge.augmentation) are fitted on, never held out or scored: the real utterances are folded,
    each is held out exactly once, and each copy is fitted on in every fold where its original is
    (so nothing of a held-out utterance reaches its fold's model)."""
    copy = np.array([is_augmented_copy(u) for u in utt_ids], dtype=bool)
    if not copy.any():
        return cv_folds(y, folds, seed, speakers)
    real = np.flatnonzero(~copy)
    source = np.array([u.split(AUGMENTED_ID_MARK)[0] for u in utt_ids])
    real_speakers = None if speakers is None else [speakers[i] for i in real]
    result = []
    for _, held_out in cv_folds(np.asarray(y)[real], folds, seed, real_speakers):
        held_out = real[held_out]
        result.append((np.flatnonzero(~np.isin(source, source[held_out])), held_out))
    return result


def training_folds(train: Pooled, y: np.ndarray, folds: int, seed: int, group_by_speaker: bool) -> tuple[Folds, str]:
    """The CV folds of the training split (common.cv.cv_folds), grouped by the manifest's speakers
    when ``group_by_speaker`` (held-out rows are then unseen speakers, as in the test splits), and
    what they are grouped by: "speaker" when no speaker is on both sides of a fold, else "none"."""
    speakers = train.speakers if group_by_speaker else None
    found = folds_with_copies(y, train.utt_ids, folds, seed, speakers)
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
            params[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec["log"]))
        else:
            params[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec["log"]))
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


class BoostedFolds:
    """XGBoost cross-validation that saves work across Optuna trials.

    Each fold's matrices (XGBoost's ``QuantileDMatrix`` for the ``hist`` method: the features
    quantized once) are built at the first trial and reused by every later one; a trial trains
    with XGBoost's native ``train`` (the same booster ``XGBClassifier`` fits) for at most
    ``n_estimators`` rounds, stopping early when the fold's held-out rows (training rows) have
    not improved for ``early_stopping_rounds`` rounds (None: never). ``threads`` is XGBoost's
    ``nthread``.
    """

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        folds: Folds,
        n_classes: int,
        threads: int,
        early_stopping_rounds: int | None,
    ):
        self.X, self.y, self.folds, self.n_classes, self.threads = X, y, folds, n_classes, threads
        self.early_stopping_rounds = int(early_stopping_rounds) if early_stopping_rounds else None
        self._matrices: dict[tuple[Any, ...], list[tuple[Any, Any]]] = {}
        self.built = 0  # matrices built, for the record (and the tests)

    def booster_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Native parameters of ``XGBClassifier(**params)`` (its own translation), rounds excluded."""
        from xgboost import XGBClassifier

        native = {
            k: v for k, v in XGBClassifier(**params, n_jobs=self.threads).get_xgb_params().items() if v is not None
        }
        native.pop("n_estimators", None)
        if self.n_classes > 2:
            native.update(objective="multi:softprob", num_class=self.n_classes)
        native.setdefault("eval_metric", "logloss" if self.n_classes <= 2 else "mlogloss")
        return native

    def matrices(self, number: int, params: Mapping[str, Any]) -> tuple[Any, Any]:
        """(fitting, held-out) matrices of fold ``number`` for these parameters' binning, built once."""
        import xgboost

        quantized = params.get("tree_method") in (None, "hist")
        key = (quantized, int(params.get("max_bin") or 256))
        if key not in self._matrices:
            self._matrices[key] = [None] * len(self.folds)
        cached = self._matrices[key]
        if cached[number] is None:
            fit_rows, held_out = self.folds[number]
            if quantized:
                fit = xgboost.QuantileDMatrix(self.X[fit_rows], self.y[fit_rows], max_bin=key[1], nthread=self.threads)
                held = xgboost.QuantileDMatrix(
                    self.X[held_out], self.y[held_out], ref=fit, max_bin=key[1], nthread=self.threads
                )
            else:
                fit = xgboost.DMatrix(self.X[fit_rows], self.y[fit_rows], nthread=self.threads)
                held = xgboost.DMatrix(self.X[held_out], self.y[held_out], nthread=self.threads)
            cached[number] = (fit, held)
            self.built += 1
        return cached[number]

    def fit_fold(self, number: int, params: Mapping[str, Any], early_stopping: bool = True) -> tuple[Any, int]:
        """Train fold ``number``: (booster, rounds to use = the best round with early stopping)."""
        import xgboost

        fit, held = self.matrices(number, params)
        rounds = int(params.get("n_estimators", 100))
        stop = self.early_stopping_rounds if early_stopping else None
        booster = xgboost.train(
            self.booster_params(params),
            fit,
            num_boost_round=rounds,
            evals=[(held, "held_out")] if stop else (),
            early_stopping_rounds=stop,
            verbose_eval=False,
        )
        return booster, (booster.best_iteration + 1 if stop else rounds)

    def predict(self, booster: Any, number: int, rounds: int) -> np.ndarray:
        """Class probabilities of fold ``number``'s held-out rows from the booster's first ``rounds`` rounds."""
        held_out = self.folds[number][1]
        raw = booster.inplace_predict(self.X[held_out], iteration_range=(0, rounds))
        return np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else np.asarray(raw, dtype=np.float64)

    def final_cv(self, params: Mapping[str, Any], boosters: Sequence[Any], rounds: int) -> CrossValidation:
        """Out-of-fold probabilities of the final configuration (``rounds`` rounds, no early stopping):
        from a tuning booster's first ``rounds`` rounds where it grew that many, else refitted."""
        probabilities = np.zeros((len(self.y), self.n_classes))
        fold_of_row = np.full(len(self.y), -1, dtype=np.int64)
        for number, (_, held_out) in enumerate(self.folds):
            booster = boosters[number] if number < len(boosters) else None
            if booster is None or booster.num_boosted_rounds() < rounds:
                booster, _ = self.fit_fold(number, {**params, "n_estimators": rounds}, early_stopping=False)
            probabilities[held_out] = self.predict(booster, number, rounds)
            fold_of_row[held_out] = number
        return CrossValidation(probabilities, fold_of_row)


def make_pruner(block: Mapping[str, Any], folds: int) -> Any:
    """The Optuna pruner of ``block['pruner']`` (none, median, hyperband); steps are folds."""
    import optuna

    kind = block["pruner"]
    startup = int(block["pruner_startup_trials"])
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=0)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=folds, reduction_factor=2)
    raise ValueError(f"unknown pruner {kind!r}; expected none, median or hyperband")


def tune(
    name: str, block: Mapping[str, Any], X: np.ndarray, y: np.ndarray, folds: Folds, n_classes: int, threads: int
) -> Search:
    """Optuna (seeded TPE) over ``block['space']``, maximising the mean CV score of ``block['objective']``
    (XGBoost: the block's ``params`` fixed, the space searched).

    Only ``X``/``y`` (the training split) are seen. Folds run one after another; after each, the
    trial reports the mean score of its folds so far, and the pruner (``block['pruner']``) may
    stop it. XGBoost trains through :class:`BoostedFolds` (matrices built once, early stopping
    on each fold's held-out rows); its final ``n_estimators`` is the mean of the best trial's
    folds' best rounds, and its out-of-fold probabilities are that final configuration's. Other
    tuned classifiers refit a clone per fold; their out-of-fold probabilities are the best trial's.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fixed = estimator_params(name, block)
    objective_name = block["objective"]
    boosted = (
        BoostedFolds(X, y, folds, n_classes, threads, block["early_stopping_rounds"])
        if CLASSIFIER_SPECS[name].boosted
        else None
    )
    kept: dict[str, Any] = {}  # the best complete trial so far: number, value, cv, boosters

    def objective(trial: Any) -> float:
        params = {**fixed, **suggest_params(trial, block["space"])}
        probabilities = np.zeros((len(y), n_classes))
        fold_of_row = np.full(len(y), -1, dtype=np.int64)
        scores, rounds, boosters = [], [], []
        for number, (fit_rows, held_out) in enumerate(folds):
            if boosted is not None:
                booster, best = boosted.fit_fold(number, params)
                probabilities[held_out] = boosted.predict(booster, number, best)
                boosters.append(booster)
                rounds.append(best)
            else:
                model = clone(build_classifier(name, params, threads)).fit(X[fit_rows], y[fit_rows])
                probabilities[held_out] = predict_proba(model, X[held_out], n_classes)
            fold_of_row[held_out] = number
            done = fold_of_row >= 0
            scores.append(fold_mean_score(objective_name, y[done], probabilities[done], fold_of_row[done]))
            trial.report(scores[-1], number)
            if number < len(folds) - 1 and trial.should_prune():
                log.info("trial %d pruned after fold %d: %.4f %s", trial.number, number, scores[-1], dict(trial.params))
                raise optuna.TrialPruned()
        value = scores[-1]
        if rounds:
            trial.set_user_attr("fold_rounds", rounds)
            trial.set_user_attr("rounds", int(round(float(np.mean(rounds)))))
        if not kept or value > kept["value"]:
            kept.update(number=trial.number, value=value, cv=CrossValidation(probabilities, fold_of_row))
            kept["boosters"] = boosters
        log.info("trial %d: %s = %.4f %s %s", trial.number, objective_name, value, dict(trial.params), rounds or "")
        return value

    study = optuna.create_study(
        study_name=f"{name}_tuning",  # fixed: Hyperband assigns brackets from it
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=int(block["seed"])),
        pruner=make_pruner(block, len(folds)),
    )
    study.optimize(objective, n_trials=int(block["trials"]))
    best = study.best_trial
    if kept.get("number") != best.number:
        raise RuntimeError(f"kept the CV of trial {kept.get('number')}, but Optuna's best is trial {best.number}")
    params = {**fixed, **best.params}
    cv = kept["cv"]
    if boosted is not None:
        params["n_estimators"] = int(best.user_attrs["rounds"])
        cv = boosted.final_cv(params, kept["boosters"], params["n_estimators"])
    trials = study.trials_dataframe(attrs=("number", "value", "params", "user_attrs", "duration", "state"))
    trials["duration"] = trials["duration"].dt.total_seconds()
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    tuning = {
        "sampler": "TPESampler",
        "seed": int(block["seed"]),
        "trials": int(block["trials"]),
        "objective": objective_name,
        "best_trial": best.number,
        "best_value": float(best.value),
        "space": block["space"],
        "folds": len(folds),
        "pruner": block["pruner"],
        "pruned_trials": int(pruned),
    }
    if boosted is not None:
        tuning.update(
            early_stopping_rounds=boosted.early_stopping_rounds,
            early_stopping_data="each fold's held-out rows of the training split",
            n_estimators_bound=int(best.params.get("n_estimators", fixed.get("n_estimators", 100))),
            fold_rounds=best.user_attrs["fold_rounds"],
            matrices_built=boosted.built,
        )
    return Search(params, cv, trials, tuning)


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
    save_estimator(model, output.model)  # skops, with its SHA-256 record
    with atomic_path(output.trials) as tmp:
        search.trials.to_csv(tmp, index=False)
    for split, path in zip(splits, output.probabilities, strict=True):
        write_probabilities(path, data[split].utt_ids, predict_proba(model, data[split].X, len(classes)), classes)
    oof = pd.DataFrame(search.cv.probabilities, columns=list(classes))
    oof.insert(0, "utt_id", data[train_split].utt_ids)
    oof["fold"] = search.cv.fold
    with atomic_path(output.oof) as tmp:
        oof.to_parquet(tmp, index=False)
    write_checked_json(output.summary, summary)


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
    run_rule(main, keep=True)
