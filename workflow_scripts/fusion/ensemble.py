"""The DFAT ensemble: P = w1 P_XGB + w2 P_RF + w3 P_LR, weights tuned with Optuna on training data.

The weights lie on the simplex by construction: w1 in [0, 1], w2 = share * (1 - w1) with share
in [0, 1] (so w2 in [0, 1 - w1]) and w3 = 1 - w1 - w2. Optuna's seeded TPE sampler maximises
the mean, over the folds of a stratified K-fold split of the TRAINING split (paper: 2 folds,
seed 42), of the objective on each fold's held-out rows, where every member was refitted on
the other rows with its final hyperparameters: the weights are tuned on out-of-fold
probabilities of the training data. No test split is an input of this step.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from workflow_scripts.fusion.classifiers import (TRAIN_SPLIT, CrossValidation, cross_validate, set_threads, speaker_groups,
                                                 stratified_folds)
from workflow_scripts.fusion.pooling import encode_labels, load_feature_set
from workflow_scripts.common.metrics import objective_score
from workflow_scripts.common.files import atomic_path, parse_json_argument, read_json, write_json
from workflow_scripts.common.logs import setup_logging

log = logging.getLogger(__name__)

# w1, w2, w3 of the paper's formula, in this order.
MEMBERS = ("xgboost", "rf", "lr")


def simplex_weights(w1: float, share: float) -> dict[str, float]:
    """The three weights from w1 in [0, 1] and the share of the remainder given to RF."""
    if not (0.0 <= w1 <= 1.0 and 0.0 <= share <= 1.0):
        raise ValueError(f"w1 {w1} and share {share} must lie in [0, 1]")
    w2 = share * (1.0 - w1)
    return {"xgboost": w1, "rf": w2, "lr": max(0.0, 1.0 - w1 - w2)}


def combine(probabilities: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The weighted sum of the members' class probabilities."""
    missing = [m for m in weights if m not in probabilities]
    if missing:
        raise KeyError(f"no probabilities for ensemble member(s) {missing}")
    return sum(float(weights[m]) * np.asarray(probabilities[m], dtype=np.float64) for m in weights)


def fold_mean_score(objective: str, y: np.ndarray, probabilities: np.ndarray, fold: np.ndarray) -> float:
    """The objective on each fold's held-out rows, averaged over folds."""
    return float(np.mean([objective_score(objective, y[fold == k], probabilities[fold == k])
                          for k in range(int(fold.max()) + 1)]))


def tune_weights(oof: Mapping[str, np.ndarray], y: np.ndarray, fold: np.ndarray,
                 block: Mapping[str, Any]) -> tuple[dict[str, float], float, pd.DataFrame]:
    """Optuna over the simplex: (best weights, best mean-fold objective, every trial)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: Any) -> float:
        weights = simplex_weights(trial.suggest_float("w_xgboost", 0.0, 1.0), trial.suggest_float("rf_share", 0.0, 1.0))
        for member, value in weights.items():
            trial.set_user_attr(f"w_{member}", value)
        return fold_mean_score(block["objective"], y, combine(oof, weights), fold)

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=int(block["seed"])))
    study.optimize(objective, n_trials=int(block["trials"]))
    best = study.best_trial
    weights = simplex_weights(best.params["w_xgboost"], best.params["rf_share"])
    trials = study.trials_dataframe(attrs=("number", "value", "params", "user_attrs", "state"))
    return weights, float(best.value), trials


def member_oof(models: Mapping[str, Any], X: np.ndarray, y: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]],
               n_classes: int, objective: str, threads: int) -> dict[str, CrossValidation]:
    """Out-of-fold probabilities of every member: unfitted clones of the fitted pipelines, refitted per fold."""
    return {name: cross_validate(set_threads(model, threads), X, y, folds, n_classes, objective)
            for name, model in models.items()}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the tune_ensemble rule."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="the fusion.ensemble block as JSON")
    parser.add_argument("--classes", required=True, nargs="+")
    parser.add_argument("--feature-set", required=True)
    parser.add_argument("--models", required=True, nargs=3, help="model.joblib of xgboost, rf and lr, in this order")
    parser.add_argument("--pooled-train", required=True, nargs="+", help="pooled TRAINING files (one per modality)")
    parser.add_argument("--weights", required=True, help="output weights.json")
    parser.add_argument("--trials", required=True, help="output trials.csv")
    parser.add_argument("--oof", required=True, help="output out-of-fold probabilities (parquet)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    setup_logging()
    from threadpoolctl import threadpool_limits

    block = parse_json_argument(args.config)
    started = time.time()
    with threadpool_limits(limits=args.threads):
        data = load_feature_set(args.pooled_train)
        if sorted(data) != [TRAIN_SPLIT]:
            raise SystemExit(f"--pooled-train: the ensemble is tuned on the {TRAIN_SPLIT!r} split only, "
                             f"got splits {sorted(data)}")
        train = data[TRAIN_SPLIT]
        y = encode_labels(train.labels, args.classes, f"{TRAIN_SPLIT} labels")
        models = {name: joblib.load(path) for name, path in zip(MEMBERS, args.models)}
        summaries = {name: read_json(Path(path).with_name("summary.json")) for name, path in zip(MEMBERS, args.models)}
        for name, summary in summaries.items():
            if summary["classifier"] != name or summary["feature_set"] != args.feature_set:
                raise SystemExit(f"--models: expected the {name} model of feature set {args.feature_set}, got "
                                 f"{summary['classifier']} of {summary['feature_set']}")
        groups = speaker_groups(train, int(block["folds"]), bool(block.get("group_by_speaker", True)))
        folds = stratified_folds(y, int(block["folds"]), int(block["seed"]), len(args.classes), groups)
        cvs = member_oof(models, train.X, y, folds, len(args.classes), block["objective"], args.threads)
        fold = cvs[MEMBERS[0]].fold
        oof = {name: cv.probabilities for name, cv in cvs.items()}
        weights, best, trials = tune_weights(oof, y, fold, block)

    equal = {m: 1.0 / len(MEMBERS) for m in MEMBERS}
    payload = {
        "weights": weights,
        "formula": "P = w_xgboost * P_xgboost + w_rf * P_rf + w_lr * P_lr",
        "objective": {"metric": block["objective"], "value": best,
                      "aggregation": f"mean over the {block['folds']} folds' held-out rows"},
        "trials": int(block["trials"]),
        "sampler": "TPESampler",
        "seed": int(block["seed"]),
        "folds": int(block["folds"]),
        "folds_grouped_by": "speaker" if groups else "none",
        "data": {
            "split": TRAIN_SPLIT, "feature_set": args.feature_set, "utterances": len(y),
            "per_class": {c: int((y == i).sum()) for i, c in enumerate(args.classes)},
            "files": list(args.pooled_train),
            "probabilities": "out-of-fold: each member refitted on the other folds with its final hyperparameters",
        },
        "members": {name: {"model": path, "hyperparameters": summaries[name]["hyperparameters"],
                           "oof_score": fold_mean_score(block["objective"], y, oof[name], fold)}
                    for name, path in zip(MEMBERS, args.models)},
        "equal_weights_score": fold_mean_score(block["objective"], y, combine(oof, equal), fold),
        "seconds": round(time.time() - started, 2),
    }
    frame = pd.DataFrame({f"{name}:{label}": p[:, i] for name, p in oof.items() for i, label in enumerate(args.classes)})
    frame.insert(0, "utt_id", train.utt_ids)
    frame["fold"] = fold
    with atomic_path(args.oof) as tmp:
        frame.to_parquet(tmp, index=False)
    with atomic_path(args.trials) as tmp:
        trials.to_csv(tmp, index=False)
    write_json(args.weights, payload)
    log.info("weights %s: %s %.4f (equal weights %.4f; members %s) in %.1f s", weights, block["objective"], best,
             payload["equal_weights_score"], {m: round(v["oof_score"], 4) for m, v in payload["members"].items()},
             payload["seconds"])


if __name__ == "__main__":
    main()
