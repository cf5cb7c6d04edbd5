"""XGBoost tuning's early stopping and pruning, and the ensemble's reuse of the classifiers'
out-of-fold probabilities: training rows only, seeded, deterministic."""

import numpy as np
import pytest

from workflow_scripts.common.cv import cv_folds
from workflow_scripts.fusion import classifiers as fusion_classifiers
from workflow_scripts.fusion import ensemble as fusion_ensemble
from workflow_scripts.fusion.pooling import Pooled

CLASSES = ["neutral", "negative"]


def _data(n=180, d=12, seed=0):
    """Labels with 25% noise, signal in two columns: boosting overfits soon at a high learning rate."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    shown = np.where(rng.random(n) < 0.75, y, 1 - y)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, :2] += shown[:, None]
    return X, y


def _block(**overrides):
    block = {
        "trials": 3,
        "objective": "balanced_accuracy",
        "seed": 42,
        "params": {"tree_method": "hist", "max_bin": 16},
        "space": {
            "n_estimators": {"type": "int", "low": 150, "high": 200, "log": False},
            "max_depth": {"type": "int", "low": 2, "high": 4, "log": False},
            "learning_rate": {"type": "float", "low": 0.3, "high": 0.5, "log": False},
        },
        "early_stopping_rounds": 5,
        "pruner": "none",
        "pruner_startup_trials": 5,
    }
    return {**block, **overrides}


def test_early_stopping_on_held_out_training_rows_with_n_estimators_as_bound(monkeypatch):
    import xgboost

    X, y = _data()
    folds = cv_folds(y, 3, 42)
    built = []
    original = xgboost.QuantileDMatrix

    def recording(data, *args, **kwargs):
        built.append(np.asarray(data).copy())
        return original(data, *args, **kwargs)

    monkeypatch.setattr(xgboost, "QuantileDMatrix", recording)
    search = fusion_classifiers.tune("xgboost", _block(), X, y, folds, 2, 1)
    # The quantized matrices: one fitting and one held-out matrix per fold, built once for all
    # three trials, each exactly that fold's rows of the training data.
    assert len(built) == 2 * len(folds) and search.tuning["matrices_built"] == len(folds)
    for number, (fit_rows, held_out) in enumerate(folds):
        np.testing.assert_array_equal(built[2 * number], X[fit_rows])
        np.testing.assert_array_equal(built[2 * number + 1], X[held_out])
    # Every fold stopped early, below the sampled bound; the final model uses the mean best round.
    rounds = search.tuning["fold_rounds"]
    assert max(rounds) < search.tuning["n_estimators_bound"]
    assert search.params["n_estimators"] == round(np.mean(rounds))
    assert search.tuning["early_stopping_data"] == "each fold's held-out rows of the training split"
    # The saved out-of-fold probabilities are the final configuration's, as a refit per fold gives.
    pipeline = fusion_classifiers.build_classifier("xgboost", search.params)
    refit = fusion_classifiers.cross_validate(pipeline, X, y, folds, 2)
    np.testing.assert_allclose(search.cv.probabilities, refit.probabilities, atol=1e-6)
    np.testing.assert_array_equal(search.cv.fold, refit.fold)
    # No scaler in front of the trees.
    assert list(pipeline.named_steps) == ["model"]
    # Seeded: a second run gives the same trials, parameters and probabilities.
    again = fusion_classifiers.tune("xgboost", _block(), X, y, folds, 2, 1)
    assert again.params == search.params and again.tuning == search.tuning
    np.testing.assert_array_equal(again.cv.probabilities, search.cv.probabilities)
    # Without early stopping every fold grows n_estimators rounds.
    full = fusion_classifiers.tune("xgboost", _block(early_stopping_rounds=None, trials=1), X, y, folds, 2, 1)
    assert full.tuning["fold_rounds"] == [full.tuning["n_estimators_bound"]] * len(folds)


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_pruning_across_folds_is_deterministic(pruner):
    X, y = _data(seed=1)
    folds = cv_folds(y, 3, 42)
    block = _block(trials=10, pruner=pruner, pruner_startup_trials=2)
    first = fusion_classifiers.tune("xgboost", block, X, y, folds, 2, 1)
    states = first.trials["state"].tolist()
    assert "PRUNED" in states and states[first.tuning["best_trial"]] == "COMPLETE"
    assert first.tuning["pruned_trials"] == states.count("PRUNED")
    pruned = first.trials[first.trials["state"] == "PRUNED"]
    assert pruned["user_attrs_rounds"].isna().all()  # stopped before its last fold
    second = fusion_classifiers.tune("xgboost", block, X, y, folds, 2, 1)
    assert second.trials["state"].tolist() == states
    assert second.trials["value"].equals(first.trials["value"]) and second.params == first.params


def test_the_histogram_cache_bound_reaches_every_booster_and_changes_no_result():
    """configs/paper_vlsp.yaml bounds XGBoost's per-node histogram cache (max_cached_hist_node:
    features x bins x 16 bytes a node, GBs on 8k-wide features at depth 8): a fixed parameter
    that must reach the tuning's boosters and the final model, and only bound memory."""
    import json

    X, y = _data(n=240, d=30, seed=3)
    folds = cv_folds(y, 3, 42)
    deep = _block(space={**_block()["space"], "max_depth": {"type": "int", "low": 7, "high": 8, "log": False}})
    free = fusion_classifiers.tune("xgboost", deep, X, y, folds, 2, 1)
    bounded = {**deep, "params": {**deep["params"], "max_cached_hist_node": 2}}
    capped = fusion_classifiers.tune("xgboost", bounded, X, y, folds, 2, 1)
    boosted = fusion_classifiers.BoostedFolds(X, y, folds, 2, 1, None)
    assert boosted.booster_params(capped.params)["max_cached_hist_node"] == 2
    model = fusion_classifiers.build_classifier("xgboost", capped.params).fit(X, y)
    config = json.loads(model.named_steps["model"].get_booster().save_config())
    (updater,) = config["learner"]["gradient_booster"]["updater"]
    assert updater["hist_train_param"]["max_cached_hist_node"] == "2"
    assert capped.params == {**free.params, "max_cached_hist_node": 2}
    assert capped.trials["value"].equals(free.trials["value"])
    np.testing.assert_array_equal(capped.cv.probabilities, free.cv.probabilities)


def test_ensemble_reuses_the_members_out_of_fold_probabilities_on_the_same_folds():
    X, y = _data(n=120, seed=2)
    speakers = [f"spk{i % 6}" for i in range(len(y))]
    info = {"modality": "acoustic", "statistics": ["mean"], "statistic_dim": 12, "dim": 12, "source_metadata": {}}
    train = Pooled([f"u{i}" for i in range(len(y))], [CLASSES[v] for v in y], X, info, speakers)
    cv = {"folds": 2, "seed": 42, "group_by_speaker": True}
    blocks = {
        "lr": {"C": 1.0, "class_weight": "balanced", "max_iter": 200, "solver": "lbfgs"},
        "rf": {"n_estimators": 20, "max_depth": 3, "min_samples_leaf": 1, "class_weight": None, "seed": 42},
        "xgboost": _block(trials=2),
    }
    models, summaries, saved = {}, {}, {}
    for name in ("xgboost", "rf", "lr"):
        model, search, summary = fusion_classifiers.train_classifier(name, blocks[name], cv, train, CLASSES, "train", 1)
        models[name], saved[name] = model, search.cv
        summaries[name] = {**summary, "feature_set": "early"}
    ensemble = {**cv, "trials": 5, "objective": "balanced_accuracy"}
    files = {"models": ["x", "r", "l"], "pooled": ["train.parquet"]}
    reused = fusion_ensemble.tune_ensemble(models, summaries, train, CLASSES, ensemble, "train", 1, files, saved)
    refitted = fusion_ensemble.tune_ensemble(models, summaries, train, CLASSES, ensemble, "train", 1, files)
    assert reused[0]["data"]["oof_source"] == {m: "reused" for m in ("xgboost", "rf", "lr")}
    assert refitted[0]["data"]["oof_source"] == {m: "refitted" for m in ("xgboost", "rf", "lr")}
    assert reused[0]["weights"] == refitted[0]["weights"]
    np.testing.assert_allclose(
        reused[2].drop(columns="utt_id").to_numpy(), refitted[2].drop(columns="utt_id").to_numpy(), atol=1e-6
    )
    # Other folds (3 instead of 2): nothing to reuse.
    other = fusion_ensemble.tune_ensemble(
        models, summaries, train, CLASSES, {**ensemble, "folds": 3}, "train", 1, files, saved
    )
    assert set(other[0]["data"]["oof_source"].values()) == {"refitted"}
