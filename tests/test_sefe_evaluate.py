"""Acoustic-only evaluation: metrics, train-only fitting, joins by utt_id."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.common.features import write_features
from workflow_scripts.common.labels import encode_labels
from workflow_scripts.sefe.evaluate import LabelledSplit, evaluate, main, score_split

from rule_job import rule_job

CLASSES = ["neutral", "negative"]
SPLITS = ["train", "dev", "public_test"]
CONFIG = {
    "statistics": ["mean", "var", "max", "min"],
    "C": [0.01, 0.1, 1.0],
    "cv_folds": 3,
    "class_weight": "balanced",
    "max_iter": 2000,
    "seed": 42,
}


def write_split(directory, split, n, seed, flip_labels=False, backend="handcrafted"):
    """Features whose first dimension carries the class, with 4 speakers per split."""
    rng = np.random.default_rng(seed)
    labels = np.array(CLASSES)[rng.integers(0, 2, n)]
    signal = (labels == "negative").astype(np.float32)
    stats = {s: rng.standard_normal((n, 6)).astype(np.float32) for s in CONFIG["statistics"]}
    stats["mean"][:, 0] += 3.0 * signal
    ids = [f"{split}_{i:03d}" for i in range(n)]
    write_features(
        directory / f"{split}.parquet",
        ids,
        stats,
        {"model": backend, "backend": backend, "checkpoint": "none", "preprocessing": {}},
    )
    if flip_labels:
        labels = np.where(labels == "negative", "neutral", "negative")
    # rows in another order than the features: the join is by utt_id
    order = rng.permutation(n)
    pd.DataFrame(
        {
            "utt_id": np.array(ids)[order],
            "audio_path": "x.wav",
            "duration_s": 1.0,
            "sample_rate": 16000,
            "text": "t",
            "label": labels[order],
            "split": split,
            "speaker": [f"{split}_spk{i % 4}" for i in order],
        }
    ).to_csv(directory / f"{split}.tsv", sep="\t", index=False, quoting=3)


def run(directory, splits=SPLITS, train_split="train"):
    inputs = {s: (str(directory / f"{s}.parquet"), str(directory / f"{s}.tsv")) for s in splits}
    return evaluate(CONFIG, CLASSES, inputs, train_split)


class Predicts:
    """A fitted model stand-in that predicts the given class names."""

    def __init__(self, predictions):
        self.predictions = np.asarray(predictions, dtype=object)

    def predict(self, x):
        return self.predictions


def test_metrics_match_hand_computed_values():
    y_true = ["neutral", "neutral", "neutral", "negative", "negative"]
    y_pred = ["neutral", "negative", "neutral", "negative", "neutral"]
    split = LabelledSplit(
        [str(i) for i in range(5)],
        np.zeros((5, 1)),
        np.asarray(y_true, dtype=object),
        encode_labels(y_true, CLASSES, "test"),
        np.asarray(["s"] * 5, dtype=object),
        {},
    )
    metrics = score_split(Predicts(y_pred), split, CLASSES)
    assert metrics["WA"] == pytest.approx(0.6)
    assert metrics["UA"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert metrics["WF1"] == pytest.approx((3 * 2 / 3 + 2 * 0.5) / 5)
    assert metrics["confusion_matrix"] == [[2, 1], [1, 1]] and metrics["n"] == 5
    assert metrics["support"] == {"neutral": 3, "negative": 2}
    assert metrics["chance"] == {"WA_majority": 0.6, "UA": 0.5}


def test_learns_the_signal_and_reports_every_other_split(tmp_path):
    for seed, split in enumerate(SPLITS):
        write_split(tmp_path, split, 120 if split == "train" else 60, seed)
    record = run(tmp_path)
    assert set(record["splits"]) == {"dev", "public_test"}
    for metrics in record["splits"].values():
        assert metrics["WA"] > 0.85 and metrics["UA"] > 0.85 and metrics["n"] == 60
        assert metrics["support"] == {c: int(np.sum(metrics["confusion_matrix"][i])) for i, c in enumerate(CLASSES)}
    assert record["features"] == 24 and record["backend"] == "handcrafted" and record["classes"] == CLASSES
    assert record["train"]["split"] == "train" and record["train"]["n"] == 120
    assert record["classifier"]["C"] in CONFIG["C"]
    assert record["classifier"]["selection"] == "3-fold stratified CV on train, speaker-disjoint, balanced accuracy"
    assert run(tmp_path) == record  # seeded: same numbers twice


def test_test_labels_never_influence_the_model(tmp_path):
    for seed, split in enumerate(SPLITS):
        write_split(tmp_path, split, 120 if split == "train" else 60, seed)
    original = run(tmp_path)
    for seed, split in enumerate(SPLITS[1:], start=1):
        write_split(tmp_path, split, 60, seed, flip_labels=True)
    flipped = run(tmp_path)
    assert flipped["classifier"] == original["classifier"] and flipped["train"] == original["train"]
    for split in SPLITS[1:]:
        # same predictions, opposite labels: accuracy mirrors
        assert flipped["splits"][split]["WA"] == pytest.approx(1 - original["splits"][split]["WA"])


def test_the_train_split_is_the_one_the_rule_names(tmp_path):
    splits = ["fit", "dev", "public_test"]
    for seed, split in enumerate(splits):
        write_split(tmp_path, split, 120 if split == "fit" else 60, seed)
    record = run(tmp_path, splits, train_split="fit")
    assert record["train"] == {"split": "fit", "n": 120, "WA": record["train"]["WA"]}
    assert set(record["splits"]) == {"dev", "public_test"}
    assert "CV on fit" in record["classifier"]["selection"]
    with pytest.raises(ValueError, match="no 'train' split among"):
        run(tmp_path, splits)


def test_mismatched_utterances_labels_and_backends_are_named(tmp_path):
    for seed, split in enumerate(SPLITS):
        write_split(tmp_path, split, 40, seed)
    manifest = pd.read_csv(tmp_path / "dev.tsv", sep="\t", quoting=3, dtype=str)
    manifest.iloc[:-1].to_csv(tmp_path / "dev.tsv", sep="\t", index=False, quoting=3)
    with pytest.raises(ValueError, match=r"dev\.parquet and .*dev\.tsv disagree: .*features without a manifest row"):
        run(tmp_path)
    manifest.loc[0, "label"] = "happy"
    manifest.to_csv(tmp_path / "dev.tsv", sep="\t", index=False, quoting=3)
    with pytest.raises(
        ValueError, match=rf"dev\.tsv: labels not in task\.classes .*utt_id '{manifest.utt_id[0]}' has 'happy'"
    ):
        run(tmp_path)
    write_split(tmp_path, "dev", 40, 1)
    out = tmp_path / "evaluation.json"

    def job(backend):
        return rule_job(
            input={
                "features": [str(tmp_path / f"{s}.parquet") for s in SPLITS],
                "manifests": [str(tmp_path / f"{s}.tsv") for s in SPLITS],
            },
            output={"evaluation": str(out)},
            params={"evaluation": CONFIG, "classes": CLASSES, "splits": SPLITS, "train_split": "train"},
            wildcards={"backend": backend},
        )

    with pytest.raises(ValueError, match="features of backend 'handcrafted', expected 'wavlm'"):
        main(job("wavlm"))
    assert not out.exists()
    main(job("handcrafted"))
    assert set(json.loads(out.read_text())["splits"]) == {"dev", "public_test"}
