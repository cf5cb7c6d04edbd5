"""Fusion building blocks: pooling and joins by utt_id, classifiers, the simplex ensemble, variants,
and two in-process runs of the whole fusion chain giving identical metrics."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.common import paths
from workflow_scripts.common.cv import cv_folds
from workflow_scripts.common.features import write_features
from workflow_scripts.common.manifest import SPEECH_COLUMNS, write_manifest
from workflow_scripts.fusion import classifiers as fusion_classifiers
from workflow_scripts.fusion import ensemble as fusion_ensemble
from workflow_scripts.fusion import pooling as fusion_data
from workflow_scripts.fusion import variants as fusion_variants
from workflow_scripts.fusion.ensemble import combine, simplex_weights, tune_weights
from workflow_scripts.fusion.pooling import AlignmentError, concat_statistics, load_feature_set, pool_split

from rule_job import rule_job

CLASSES = ["neutral", "negative"]
SPLITS = ["train", "dev", "public_test", "private_test"]


def _manifest(path, ids, labels):
    frame = pd.DataFrame({column: "" for column in SPEECH_COLUMNS}, index=range(len(ids)))
    frame["utt_id"], frame["label"], frame["duration_s"], frame["sample_rate"] = ids, labels, 1.0, 16000
    write_manifest(frame, path, SPEECH_COLUMNS)


def _features(path, ids, rng, dim=3, statistics=("mean", "var", "max", "min")):
    stats = {name: rng.normal(size=(len(ids), dim)).astype(np.float32) for name in statistics}
    write_features(path, ids, stats, {"model": "unit", "checkpoint": None, "preprocessing": {}})
    return stats


def test_pooling_concatenates_statistics_in_config_order_and_joins_by_utt_id(tmp_path):
    rng = np.random.default_rng(0)
    ids = ["u3", "u1", "u2"]
    stats = _features(tmp_path / "f.parquet", ids, rng)
    _manifest(tmp_path / "m.tsv", ["u1", "u2", "u3"], ["neutral", "negative", "neutral"])
    pooled = pool_split(tmp_path / "f.parquet", tmp_path / "m.tsv", ["max", "mean"], CLASSES)
    assert pooled.utt_ids == ["u1", "u2", "u3"]  # manifest order, not feature-file order
    assert pooled.labels == ["neutral", "negative", "neutral"]
    expected = np.concatenate([stats["max"], stats["mean"]], axis=1)[[1, 2, 0]]
    np.testing.assert_array_equal(pooled.X, expected)
    # The in-memory pooling used by predict gives the same vectors.
    np.testing.assert_array_equal(concat_statistics(stats, ["max", "mean"])[[1, 2, 0]], pooled.X)


def test_mismatched_ids_and_labels_fail_clearly(tmp_path):
    rng = np.random.default_rng(1)
    _features(tmp_path / "f.parquet", ["a", "b", "c"], rng)
    _manifest(tmp_path / "missing.tsv", ["a", "b", "c", "d"], ["neutral"] * 4)
    with pytest.raises(
        AlignmentError, match=r"1 utt_id\(s\) of manifest .*missing.tsv are missing from feature file .*'d'"
    ):
        pool_split(tmp_path / "f.parquet", tmp_path / "missing.tsv", ["mean"], CLASSES)
    _manifest(tmp_path / "extra.tsv", ["a", "b"], ["neutral"] * 2)
    with pytest.raises(AlignmentError, match=r"f.parquet has 1 utt_id\(s\) not in manifest.*'c'"):
        pool_split(tmp_path / "f.parquet", tmp_path / "extra.tsv", ["mean"], CLASSES)
    _manifest(tmp_path / "label.tsv", ["a", "b", "c"], ["neutral", "happy", "neutral"])
    with pytest.raises(ValueError, match=r"label.tsv, data row 2 \(utt_id 'b'\): label 'happy' is not a task class"):
        pool_split(tmp_path / "f.parquet", tmp_path / "label.tsv", ["mean"], CLASSES)
    with pytest.raises(KeyError, match=r"no statistic\(s\) \['sentence'\]"):
        pool_split(tmp_path / "f.parquet", tmp_path / "extra.tsv", ["sentence"], CLASSES)


def test_early_fusion_joins_modalities_by_utt_id(tmp_path):
    rng = np.random.default_rng(2)
    ids = ["a", "b", "c", "d"]
    labels = ["neutral", "negative", "neutral", "negative"]
    _manifest(tmp_path / "train.tsv", ids, labels)
    paths = []
    for modality, order in (("acoustic", ids), ("text", ids[::-1])):
        stats = _features(tmp_path / f"{modality}.parquet", order, rng, dim=2)
        pooled = pool_split(tmp_path / f"{modality}.parquet", tmp_path / "train.tsv", ["mean"], CLASSES)
        pooled.info.update(modality=modality, split="train")
        fusion_data.write_pooled(tmp_path / f"pooled_{modality}.parquet", pooled)
        paths.append(tmp_path / f"pooled_{modality}.parquet")
        if modality == "text":
            text_mean = stats["mean"][::-1]  # back to manifest order
    early = load_feature_set(paths[::-1])["train"]  # input order does not matter: acoustic first
    assert early.X.shape == (4, 4)
    np.testing.assert_array_equal(early.X[:, 2:], text_mean)
    assert early.labels == labels


def test_simplex_weights_and_combination():
    rng = np.random.default_rng(3)
    for w1, share in rng.random((200, 2)):
        weights = simplex_weights(w1, share)
        assert all(value >= 0 for value in weights.values())
        assert sum(weights.values()) == pytest.approx(1.0)
        assert weights["rf"] <= 1 - weights["xgboost"] + 1e-12
    probabilities = {m: rng.dirichlet([1, 1], size=5) for m in ("xgboost", "rf", "lr")}
    combined = combine(probabilities, simplex_weights(0.2, 0.5))
    np.testing.assert_allclose(
        combined, 0.2 * probabilities["xgboost"] + 0.4 * probabilities["rf"] + 0.4 * probabilities["lr"]
    )
    np.testing.assert_allclose(combined.sum(axis=1), 1.0)
    with pytest.raises(ValueError):
        simplex_weights(1.2, 0.0)


def test_tuned_weights_favour_the_informative_member_and_stay_on_the_simplex():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 200)
    informative = np.where(rng.random(200) < 0.9, y, 1 - y)
    oof = {
        "xgboost": np.full((200, 2), 0.5) + 0.01 * rng.normal(size=(200, 2)),
        "rf": np.eye(2)[informative] * 0.8 + 0.1,
        "lr": rng.dirichlet([1, 1], size=200),
    }
    fold = np.arange(200) % 2
    block = {"trials": 40, "seed": 42, "objective": "accuracy", "folds": 2}
    weights, best, trials = tune_weights(oof, y, fold, block)
    assert sum(weights.values()) == pytest.approx(1.0) and min(weights.values()) >= 0
    assert weights["rf"] > 0.4
    assert best >= 0.85
    assert len(trials) == 40
    assert (weights, best) == tune_weights(oof, y, fold, block)[:2]


def test_classifier_probabilities_and_folds():
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1], 30)
    X = rng.normal(size=(60, 4)) + y[:, None]
    folds = cv_folds(y, 3, 42)
    held_out = np.sort(np.concatenate([rows for _, rows in folds]))
    np.testing.assert_array_equal(held_out, np.arange(60))
    for name, block in (
        ("lr", {"C": 1.0, "class_weight": "balanced", "max_iter": 500, "solver": "lbfgs"}),
        ("rf", {"n_estimators": 20, "max_depth": 3, "min_samples_leaf": 1, "class_weight": None, "seed": 1}),
    ):
        pipeline = fusion_classifiers.build_classifier(name, fusion_classifiers.estimator_params(name, block))
        cv = fusion_classifiers.cross_validate(pipeline, X, y, folds, 2)
        np.testing.assert_allclose(cv.probabilities.sum(axis=1), 1.0)
        assert cv.score("balanced_accuracy", y) > 0.7
        # Not tuned: one trial, the fixed configuration with its CV score.
        search = fusion_classifiers.fixed_configuration(name, block, X, y, folds, 2, 1)
        assert len(search.trials) == 1 and search.trials.loc[0, "value"] == cv.score("balanced_accuracy", y)
    with pytest.raises(ValueError, match="at least 3 training utterances of every class"):
        cv_folds(np.array([0, 0, 0, 1, 1]), 3, 42)


def test_variant_rejects_members_of_other_feature_sets():
    member = fusion_variants.Member("lr", "text", {}, {}, np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="variant acoustic needs the classifiers"):
        fusion_variants.check_members("acoustic", [member])


# --- the fusion chain in-process, twice: the rules' entry points with one seed ---


def _write_chain_inputs(root: Path, n_train: int = 60, n_eval: int = 24) -> dict[str, list[str]]:
    """Pooled files of two modalities with planted, partly complementary signal."""
    rng = np.random.default_rng(7)
    pooled = []
    for split in SPLITS:
        n = n_train if split == "train" else n_eval
        ids = [f"{split}_{i:03d}" for i in range(n)]
        y = np.arange(n) % 2
        labels = [CLASSES[v] for v in y]
        _manifest(root / f"{split}.tsv", ids, labels)
        for modality in ("acoustic", "text"):
            visible = rng.random(n) < 0.7
            stats = {
                s: (rng.normal(size=(n, 4)) + 1.5 * (y * visible)[:, None]).astype(np.float32) for s in ("mean", "var")
            }
            write_features(root / f"{modality}_{split}.parquet", ids, stats, {"model": "unit"})
    for modality in ("acoustic", "text"):
        outputs = [str(root / "pooled" / modality / f"{split}.parquet") for split in SPLITS]
        fusion_data.main(
            rule_job(
                input={
                    "features": [str(root / f"{modality}_{s}.parquet") for s in SPLITS],
                    "manifests": [str(root / f"{s}.tsv") for s in SPLITS],
                },
                output={"pooled": outputs},
                params={"pooling": {"statistics": ["mean", "var"]}, "classes": CLASSES, "splits": SPLITS},
                wildcards={"modality": modality},
            )
        )
        pooled += outputs
    return {"pooled": pooled}


def _run_chain(root: Path, out: Path, pooled: list[str]) -> dict:
    """The rules' entry points in a row, with their outputs at the results layout below ``out``."""
    cv = {"folds": 2, "seed": 42, "group_by_speaker": True}
    blocks = {
        "lr": {"C": 1.0, "class_weight": "balanced", "max_iter": 500, "solver": "lbfgs"},
        "rf": {"n_estimators": 30, "max_depth": 4, "min_samples_leaf": 1, "class_weight": None, "seed": 42},
        "xgboost": {
            "trials": 2,
            "objective": "balanced_accuracy",
            "seed": 42,
            "params": {"tree_method": "hist", "max_bin": 16},
            "space": {
                "n_estimators": {"type": "int", "low": 10, "high": 20, "log": False},
                "max_depth": {"type": "int", "low": 2, "high": 3, "log": False},
                "learning_rate": {"type": "float", "low": 0.05, "high": 0.2, "log": True},
            },
            "early_stopping_rounds": None,
            "pruner": "none",
            "pruner_startup_trials": 5,
        },
    }

    def at(template: str, **wildcards: str) -> str:
        return str(paths.in_run(template, out, **{"scope": paths.SHARED_SCOPE, **wildcards}))

    def run_files(classifier: str) -> dict[str, str]:
        run = {"feature_set": "early", "classifier": classifier}
        return {
            "summaries": at(paths.CLASSIFIER_SUMMARY, **run),
            "oof": at(paths.CLASSIFIER_OOF, **run),
            "probabilities": [at(paths.CLASSIFIER_PROBABILITIES, **run, split=s) for s in SPLITS],
        }

    for name, block in blocks.items():
        run = {"feature_set": "early", "classifier": name}
        fusion_classifiers.main(
            rule_job(
                input={"pooled": pooled},
                output={
                    "model": at(paths.CLASSIFIER_MODEL, **run),
                    "trials": at(paths.CLASSIFIER_TRIALS, **run),
                    "probabilities": run_files(name)["probabilities"],
                    "oof": at(paths.CLASSIFIER_OOF, **run),
                    "summary": at(paths.CLASSIFIER_SUMMARY, **run),
                },
                params={"classifier": block, "cv": cv, "classes": CLASSES, "splits": SPLITS, "train_split": "train"},
                wildcards=run,
            )
        )
    members = ("xgboost", "rf", "lr")
    fusion_ensemble.main(
        rule_job(
            input={
                "models": [at(paths.CLASSIFIER_MODEL, feature_set="early", classifier=m) for m in members],
                "summaries": [at(paths.CLASSIFIER_SUMMARY, feature_set="early", classifier=m) for m in members],
                "pooled_train": [p for p in pooled if p.endswith("/train.parquet")],
            },
            output={
                "weights": at(paths.ENSEMBLE_WEIGHTS),
                "trials": at(paths.ENSEMBLE_TRIALS),
                "oof": at(paths.ENSEMBLE_OOF),
            },
            params={
                "ensemble": {
                    "trials": 10,
                    "folds": 2,
                    "seed": 42,
                    "objective": "balanced_accuracy",
                    "group_by_speaker": True,
                },
                "classes": CLASSES,
                "train_split": "train",
            },
            threads=2,
        )
    )
    runs = [run_files(c) for c in ("lr", "rf", "xgboost")]
    fusion_variants.main(
        rule_job(
            input={
                "summaries": [r["summaries"] for r in runs],
                "oof": [r["oof"] for r in runs],
                "probabilities": [p for r in runs for p in r["probabilities"]],
                "weights": at(paths.ENSEMBLE_WEIGHTS),
                "manifests": [str(root / f"{s}.tsv") for s in SPLITS],
            },
            output={
                "metrics": at(paths.VARIANT_METRICS, variant="hybrid"),
                "probabilities": [at(paths.VARIANT_PROBABILITIES, variant="hybrid", split=s) for s in SPLITS],
            },
            params={
                "variants": {},
                "bootstrap": {"resamples": 200, "confidence": 0.95, "seed": 42},
                "classes": CLASSES,
                "splits": SPLITS,
                "train_split": "train",
            },
            wildcards={"variant": "hybrid"},
        )
    )
    return json.loads(Path(at(paths.VARIANT_METRICS, variant="hybrid")).read_text())


def test_two_runs_with_one_seed_give_identical_results(tmp_path):
    inputs = _write_chain_inputs(tmp_path)
    first = _run_chain(tmp_path, tmp_path / "run1", inputs["pooled"])
    second = _run_chain(tmp_path, tmp_path / "run2", inputs["pooled"])
    assert first == second
    for name in ("ensemble/weights.json", "fusion/early/xgboost/summary.json", "fusion/early/rf/summary.json"):
        a, b = (json.loads((tmp_path / run / paths.SHARED_SCOPE / name).read_text()) for run in ("run1", "run2"))
        for document in (a, b):
            document.pop("seconds")
            for member in document.get("members", {}).values():
                member.pop("model")  # the run directory differs
        assert a == b
    for name in ("fusion/early/xgboost/model.skops", "ensemble/oof_train.parquet"):
        assert (tmp_path / "run1" / paths.SHARED_SCOPE / name).read_bytes() == (
            tmp_path / "run2" / paths.SHARED_SCOPE / name
        ).read_bytes()
    # Every classifier writes a trials table: XGBoost its trials, LR and RF their one configuration.
    for classifier, rows in (("xgboost", 2), ("rf", 1), ("lr", 1)):
        trials = pd.read_csv(tmp_path / "run1" / paths.SHARED_SCOPE / "fusion" / "early" / classifier / "trials.csv")
        assert len(trials) == rows and trials["value"].between(0, 1).all()
    weights = first["ensemble"]["weights"]
    assert sum(weights.values()) == pytest.approx(1.0) and min(weights.values()) >= 0
    for split in SPLITS:
        frame = pd.read_parquet(
            tmp_path / "run1" / paths.SHARED_SCOPE / "fusion" / "variants" / "hybrid" / f"{split}.parquet"
        )
        np.testing.assert_allclose(frame[CLASSES].sum(axis=1), 1.0)


def test_folds_grouped_by_speaker_keep_every_speaker_on_one_side(tmp_path):
    rng = np.random.default_rng(0)
    speakers = [f"spk{i % 9}" for i in range(180)]
    y = rng.integers(0, 2, size=180)
    pooled = fusion_data.Pooled([f"u{i}" for i in range(180)], ["neutral"] * 180, np.zeros((180, 2)), {}, speakers)
    folds, grouped = fusion_classifiers.training_folds(pooled, y, 3, 42, group_by_speaker=True)
    assert grouped == "speaker" and len(folds) == 3
    for fit_rows, held_out in folds:
        assert not {speakers[i] for i in fit_rows} & {speakers[i] for i in held_out}
        assert set(np.unique(y[held_out])) == {0, 1}
    assert sorted(np.concatenate([held for _, held in folds]).tolist()) == list(range(180))
    # Disabled grouping or an unknown speaker: ungrouped folds, which mix speakers.
    ungrouped, grouped = fusion_classifiers.training_folds(pooled, y, 3, 42, group_by_speaker=False)
    assert grouped == "none"
    assert any({speakers[i] for i in fit} & {speakers[i] for i in held} for fit, held in ungrouped)
    unknown = fusion_data.Pooled(pooled.utt_ids, pooled.labels, pooled.X, {}, [""] + speakers[1:])
    assert fusion_classifiers.training_folds(unknown, y, 3, 42, group_by_speaker=True)[1] == "none"
    # Fewer speakers than folds: as many speaker-grouped folds as there are speakers (common.cv).
    folds, grouped = fusion_classifiers.training_folds(pooled, y, 10, 42, group_by_speaker=True)
    assert grouped == "speaker" and len(folds) == 9
    # Speakers survive the pooled parquet round trip.
    path = tmp_path / "pooled.parquet"
    fusion_data.write_pooled(path, fusion_data.Pooled(pooled.utt_ids, pooled.labels, pooled.X, {"dim": 2}, speakers))
    assert fusion_data.read_pooled(path).speakers == speakers
