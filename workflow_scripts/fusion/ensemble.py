"""The DFAT ensemble: P = w1 P_XGB + w2 P_RF + w3 P_LR, weights tuned with Optuna on training data.

The weights lie on the simplex by construction: w1 in [0, 1], w2 = share * (1 - w1) with share
in [0, 1] (so w2 in [0, 1 - w1]) and w3 = 1 - w1 - w2. Optuna's seeded TPE sampler maximises
the mean, over the folds of a stratified K-fold split of the TRAINING split (paper: 2 folds,
seed 42), of the objective on each fold's held-out rows, where every member was refitted on
the other rows with its final hyperparameters: the weights are tuned on out-of-fold
probabilities of the training data. A member whose train_classifier job already wrote these
out-of-fold probabilities (its oof_train.parquet, when fusion.cv gives the same folds) is not
refitted: they are read. No test split is an input of this step (the tune_ensemble rule).
"""

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# OpenMP threads (XGBoost, scikit-learn) that spin while waiting stall ~10-40x on a busy or shared
# CPU (measured: 2 threads on 2 loaded cores); passive waiting costs little on an idle one. Read
# once, when the OpenMP runtime loads: so before scikit-learn or XGBoost is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd

from workflow_scripts.common.checksums import write_checked_json
from workflow_scripts.common.cv import Folds
from workflow_scripts.common.files import atomic_path, read_json
from workflow_scripts.common.labels import encode_labels
from workflow_scripts.common.metrics import fold_mean_score
from workflow_scripts.common.model_files import load_estimator
from workflow_scripts.common.names import ENSEMBLE_FEATURE_SET, ENSEMBLE_MEMBERS
from workflow_scripts.common.rule import run_rule
from workflow_scripts.fusion.classifiers import (
    CrossValidation,
    cross_validate,
    predict_proba,
    set_threads,
    training_folds,
)
from workflow_scripts.fusion.pooling import Pooled, align_ids, concat_statistics, load_feature_set

log = logging.getLogger(__name__)


# The simplex's free parameters: the first member's weight, and the second's share of the rest.
WEIGHT_PARAM = f"w_{ENSEMBLE_MEMBERS[0]}"
SHARE_PARAM = f"{ENSEMBLE_MEMBERS[1]}_share"


def simplex_weights(w1: float, share: float) -> dict[str, float]:
    """The three weights (ENSEMBLE_MEMBERS order) from w1 in [0, 1] and the share of the remainder
    given to the second member."""
    if not (0.0 <= w1 <= 1.0 and 0.0 <= share <= 1.0):
        raise ValueError(f"w1 {w1} and share {share} must lie in [0, 1]")
    w2 = share * (1.0 - w1)
    return dict(zip(ENSEMBLE_MEMBERS, (w1, w2, max(0.0, 1.0 - w1 - w2)), strict=True))


def combine(probabilities: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The weighted sum of the members' class probabilities."""
    missing = [m for m in weights if m not in probabilities]
    if missing:
        raise KeyError(f"no probabilities for ensemble member(s) {missing}")
    return sum(float(weights[m]) * np.asarray(probabilities[m], dtype=np.float64) for m in weights)


def tune_weights(
    oof: Mapping[str, np.ndarray], y: np.ndarray, fold: np.ndarray, block: Mapping[str, Any]
) -> tuple[dict[str, float], float, pd.DataFrame]:
    """Optuna over the simplex: (best weights, best mean-fold objective, every trial)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: Any) -> float:
        w1, share = trial.suggest_float(WEIGHT_PARAM, 0.0, 1.0), trial.suggest_float(SHARE_PARAM, 0.0, 1.0)
        weights = simplex_weights(w1, share)
        for member, value in weights.items():
            trial.set_user_attr(f"w_{member}", value)
        return fold_mean_score(block["objective"], y, combine(oof, weights), fold)

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=int(block["seed"])))
    study.optimize(objective, n_trials=int(block["trials"]))
    best = study.best_trial
    weights = simplex_weights(best.params[WEIGHT_PARAM], best.params[SHARE_PARAM])
    trials = study.trials_dataframe(attrs=("number", "value", "params", "user_attrs", "state"))
    return weights, float(best.value), trials


def member_oof(
    models: Mapping[str, Any], X: np.ndarray, y: np.ndarray, folds: Folds, n_classes: int, threads: int
) -> dict[str, CrossValidation]:
    """Out-of-fold probabilities of every member: unfitted clones of the fitted pipelines, refitted per fold."""
    return {name: cross_validate(set_threads(model, threads), X, y, folds, n_classes) for name, model in models.items()}


def saved_oof(path: str, utt_ids: Sequence[str], classes: Sequence[str]) -> CrossValidation:
    """A classifier's ``oof_train.parquet`` (probabilities and fold per row), in ``utt_ids`` order."""
    frame = pd.read_parquet(path)
    order = align_ids(utt_ids, frame["utt_id"].astype(str).tolist(), "the pooled training files", str(path))
    return CrossValidation(
        frame.loc[:, list(classes)].to_numpy(dtype=np.float64)[order], frame["fold"].to_numpy(dtype=np.int64)[order]
    )


def fold_of_row(folds: Folds, rows: int) -> np.ndarray:
    """The fold each row is held out in."""
    found = np.full(rows, -1, dtype=np.int64)
    for number, (_, held_out) in enumerate(folds):
        found[held_out] = number
    return found


def reuse_or_refit(
    models: Mapping[str, Any],
    saved: Mapping[str, CrossValidation],
    X: np.ndarray,
    y: np.ndarray,
    folds: Folds,
    n_classes: int,
    threads: int,
) -> tuple[dict[str, CrossValidation], dict[str, str]]:
    """Every member's out-of-fold probabilities on ``folds``: the classifier's own (``saved``, from
    its train_classifier job: its final configuration refitted per fold) where it was computed on
    exactly these folds, else refitted here. Also, per member, which of the two ("reused", "refitted")."""
    assignment = fold_of_row(folds, len(y))
    result, how = {}, {}
    for name, model in models.items():
        if name in saved and np.array_equal(saved[name].fold, assignment):
            result[name], how[name] = saved[name], "reused"
        else:
            (result[name],) = member_oof({name: model}, X, y, folds, n_classes, threads).values()
            how[name] = "refitted"
    return result, how


def check_members(summaries: Mapping[str, Mapping[str, Any]]) -> None:
    """Each member's summary names that member, trained on the ensemble's feature set."""
    for name, summary in summaries.items():
        if summary["classifier"] != name or summary["feature_set"] != ENSEMBLE_FEATURE_SET:
            raise ValueError(
                f"ensemble: expected the {name} model of feature set {ENSEMBLE_FEATURE_SET}, got "
                f"{summary['classifier']} of {summary['feature_set']}"
            )


def tune_ensemble(
    models: Mapping[str, Any],
    summaries: Mapping[str, Mapping[str, Any]],
    train: Pooled,
    classes: Sequence[str],
    block: Mapping[str, Any],
    train_split: str,
    threads: int,
    files: Mapping[str, Sequence[str]],
    saved: Mapping[str, CrossValidation] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """The weights document, the trials and the members' out-of-fold probabilities (one frame).

    ``files`` names what was read, for the record: ``models`` (in ENSEMBLE_MEMBERS order) and
    ``pooled`` (the training files). ``saved``: the members' own out-of-fold probabilities
    (:func:`saved_oof`), reused where their folds are the ensemble's.
    """
    y = encode_labels(train.labels, classes, f"{train_split} labels", train.utt_ids)
    folds, grouped_by = training_folds(
        train, y, int(block["folds"]), int(block["seed"]), bool(block["group_by_speaker"])
    )
    cvs, how = reuse_or_refit(models, saved or {}, train.X, y, folds, len(classes), threads)
    fold = cvs[ENSEMBLE_MEMBERS[0]].fold
    oof = {name: cv.probabilities for name, cv in cvs.items()}
    weights, best, trials = tune_weights(oof, y, fold, block)
    equal = {m: 1.0 / len(ENSEMBLE_MEMBERS) for m in ENSEMBLE_MEMBERS}
    payload = {
        "weights": weights,
        "formula": "P = " + " + ".join(f"w_{m} * P_{m}" for m in ENSEMBLE_MEMBERS),
        "objective": {
            "metric": block["objective"],
            "value": best,
            "aggregation": f"mean over the {len(folds)} folds' held-out rows",
        },
        "trials": int(block["trials"]),
        "sampler": "TPESampler",
        "seed": int(block["seed"]),
        "folds": len(folds),
        "folds_grouped_by": grouped_by,
        "data": {
            "split": train_split,
            "feature_set": ENSEMBLE_FEATURE_SET,
            "utterances": len(y),
            "per_class": {c: int((y == i).sum()) for i, c in enumerate(classes)},
            "files": list(files["pooled"]),
            "probabilities": "out-of-fold: each member refitted on the other folds with its final hyperparameters",
            "oof_source": how,
        },
        "members": {
            name: {
                "model": path,
                "hyperparameters": summaries[name]["hyperparameters"],
                "oof_score": fold_mean_score(block["objective"], y, oof[name], fold),
            }
            for name, path in zip(ENSEMBLE_MEMBERS, files["models"], strict=True)
        },
        "equal_weights_score": fold_mean_score(block["objective"], y, combine(oof, equal), fold),
    }
    frame = pd.DataFrame({f"{name}:{label}": p[:, i] for name, p in oof.items() for i, label in enumerate(classes)})
    frame.insert(0, "utt_id", train.utt_ids)
    frame["fold"] = fold
    return payload, trials, frame


class EnsemblePredictor:
    """The hybrid (DFAT) variant for predict: the pooling of the run's features, its early-fusion
    members and its tuned weights, over the SEFE / TEFE statistics of new audio and transcripts."""

    def __init__(
        self,
        models: Mapping[str, Any],
        weights: Mapping[str, float],
        features: Sequence[Mapping[str, Any]],
        classes: Sequence[str],
        statistics: Mapping[str, Callable[[Sequence[str]], Mapping[str, np.ndarray]]],
    ) -> None:
        self.models = dict(models)
        self.weights = dict(weights)
        self.features = list(features)
        self.classes = list(classes)
        self.statistics = dict(statistics)

    def pooled(self, modality_stats: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
        """The early-fusion vector of each utterance, exactly as the pool_features rule builds it."""
        blocks = []
        for spec in self.features:
            where = f"{spec['modality']} features"
            block = concat_statistics(modality_stats[spec["modality"]], spec["statistics"], where)
            if block.shape[1] != spec["dim"]:
                raise ValueError(
                    f"{where}: width {block.shape[1]} ({'+'.join(spec['statistics'])}), but the run's "
                    f"models were trained on {spec['dim']} (encoder {spec['model']})"
                )
            blocks.append(block)
        return np.concatenate(blocks, axis=1)

    def predict_proba(self, modality_stats: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
        """Ensemble class probabilities, one row per utterance (columns in ``self.classes`` order)."""
        X = self.pooled(modality_stats)
        members = {name: predict_proba(model, X, len(self.classes)) for name, model in self.models.items()}
        return combine(members, self.weights)

    def predict(self, audio: Sequence[str], transcripts: Sequence[str]) -> np.ndarray:
        """Probabilities of audio files and their transcripts through the stages' pooled features."""
        stats = {"acoustic": self.statistics["acoustic"](audio), "text": self.statistics["text"](transcripts)}
        return self.predict_proba(stats)


def load_predictor(
    weights: str | os.PathLike,
    models: Mapping[str, str | os.PathLike],
    summaries: Mapping[str, str | os.PathLike],
    statistics: Mapping[str, Callable[[Sequence[str]], Mapping[str, np.ndarray]]],
) -> EnsemblePredictor:
    """predict's loader of the hybrid: the tuned ``weights`` (weights.json) and each member's fitted
    model and summary (ENSEMBLE_MEMBERS), over ``statistics``: modality -> the stage function giving
    the statistics of new audio (acoustic) or transcripts (text)."""
    summary = {name: read_json(summaries[name]) for name in ENSEMBLE_MEMBERS}
    first = summary[ENSEMBLE_MEMBERS[0]]
    for name, found in summary.items():
        if found["features"] != first["features"] or found["classes"] != first["classes"]:
            raise SystemExit(
                f"predict: the {name} model {models[name]} was trained on other features or classes "
                "than the others (an unfinished or mixed run?)"
            )
    fitted = {name: load_estimator(models[name]) for name in ENSEMBLE_MEMBERS}
    return EnsemblePredictor(fitted, read_json(weights)["weights"], first["features"], first["classes"], statistics)


def main(job: Any) -> None:
    """Entry point of the tune_ensemble rule (``job``: the rule's ``snakemake`` object).

    ``input.models`` and ``input.summaries`` hold the members in ENSEMBLE_MEMBERS order.
    """
    from threadpoolctl import threadpool_limits

    block, train_split = job.params.ensemble, job.params.train_split
    started = time.time()
    with threadpool_limits(limits=job.threads):
        data = load_feature_set(job.input.pooled_train)
        if sorted(data) != [train_split]:
            raise ValueError(f"the ensemble is tuned on the {train_split!r} split only, got splits {sorted(data)}")
        models = {name: load_estimator(path) for name, path in zip(ENSEMBLE_MEMBERS, job.input.models, strict=True)}
        summaries = {name: read_json(path) for name, path in zip(ENSEMBLE_MEMBERS, job.input.summaries, strict=True)}
        check_members(summaries)
        files = {"models": list(job.input.models), "pooled": list(job.input.pooled_train)}
        classes, train = list(job.params.classes), data[train_split]
        oof_files = list(job.input.oof) if "oof" in job.input.keys() else []
        saved = {
            name: saved_oof(path, train.utt_ids, classes)
            for name, path in zip(ENSEMBLE_MEMBERS, oof_files, strict=bool(oof_files))
        }
        payload, trials, oof = tune_ensemble(
            models, summaries, train, classes, block, train_split, job.threads, files, saved
        )
    payload["seconds"] = round(time.time() - started, 2)
    with atomic_path(job.output.oof) as tmp:
        oof.to_parquet(tmp, index=False)
    with atomic_path(job.output.trials) as tmp:
        trials.to_csv(tmp, index=False)
    write_checked_json(job.output.weights, payload)
    log.info(
        "weights %s: %s %.4f (equal weights %.4f; members %s; out-of-fold %s) in %.1f s",
        payload["weights"],
        block["objective"],
        payload["objective"]["value"],
        payload["equal_weights_score"],
        {m: round(v["oof_score"], 4) for m, v in payload["members"].items()},
        payload["data"]["oof_source"],
        payload["seconds"],
    )


if __name__ == "__main__":
    run_rule(main)
