"""The fusion rules run by Snakemake on a copy of the workflow with a small synthetic corpus and toy
encoder features (tests/fusion_synthetic.py): outputs, what each variant reads, what a config
edit reruns, predict against the rules, and the leakage test (changing dev and test labels changes
no tuned hyperparameter, weight or fitted model)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from workflow_scripts.common import paths
from workflow_scripts.fusion import rows

import fusion_synthetic
from snakemake_runner import parse_plan, run_snakemake
from workflow_copy import copy_workflow

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["neutral", "negative"]
SPLITS = ["train", "dev", "public_test", "private_test"]
TEST_SPLITS = ["public_test", "private_test"]
VARIANTS = ["acoustic", "text", "early", "late", "hybrid"]
# Table 2's rows: the variants, then the lexicon-rules row of config.yaml's challenge.rules.variants.
REPORT_VARIANTS = [*VARIANTS, "hybrid+rules"]
TARGETS = [
    "results/hybrid_metrics.json",
    "results/table2.md",
    "results/table2.csv",
    "results/figure2.png",
    "results/figure2.svg",
    "results/fusion/confusion_matrices.png",
    "results/challenge.md",
    "results/challenge.json",
    "results/table3.md",
    "results/table3.csv",
]
# The toy run's one ASR system: the reference transcripts (the toy text features are made from them).
SYSTEM = "oracle"


# The toy run's fusion block as far as rows.row_scope reads it: no neural head, no vote.
TOY_FUSION = {"heads": {}, "vote": {"members": []}}


def result(template: str, variant: str | None = None, feature_set: str | None = None, **wildcards: str) -> str:
    """A results path of the toy run: shared for acoustic-only rows / feature sets, else the system's."""
    if variant:
        scope = rows.row_scope(variant, SYSTEM, TOY_FUSION)
    else:
        scope = rows.feature_set_scope(feature_set, SYSTEM)
    fields = {"scope": scope, "variant": variant, "feature_set": feature_set, **wildcards}
    return template.format(**{k: v for k, v in fields.items() if v is not None})


# A toy lexicon of the synthetic corpus's words (tests/fusion_synthetic.py): two negative cues.
TOY_LEXICON = "phrase\tclass\nkhóc\tnegative\nghét\tnegative\n"
SIZES = {"train": 240, "dev": 30, "public_test": 60, "private_test": 60}

OVERLAY = {
    "ser_corpus": "synth",
    "corpora": {
        "synth": {
            "table": "synth/corpus.tsv",
            "audio_root": "synth",
            "columns": {
                "utt_id": "utt_id",
                "audio_path": "audio_path",
                "text": "text",
                "label": "emotion",
                "speaker": "speaker",
                "split": "split",
            },
            "label_map": {"neutral": "neutral", "negative": "negative"},
            "split": {"policy": "table"},
            "require_text": True,
        }
    },
    "fusion": {
        "features": {"acoustic": "features/acoustic_{split}.parquet", "text": "features/text_{split}.parquet"},
        "pooling": {
            "acoustic": {"statistics": ["mean", "var", "max", "min"]},
            "text": {"statistics": ["mean", "max", "sentence"]},
        },
        "cv": {"folds": 3, "seed": 42},
        "classifiers": {
            "rf": {"n_estimators": 40},
            "xgboost": {
                "trials": 3,
                "params": {"tree_method": "hist", "max_bin": 16},
                "space": {
                    "n_estimators": {"type": "int", "low": 20, "high": 40},
                    "max_depth": {"type": "int", "low": 2, "high": 4},
                },
            },
        },
        "ensemble": {"trials": 30},
        "bootstrap": {"resamples": 200},
        # The neural heads need sequence features, which the toy corpus lacks (tests/test_fusion_heads.py).
        "heads": {"variants": []},
        "vote": {"members": []},
    },
    # Reference transcripts: the one ASR system is the oracle (WER 0, no model).
    "asr": {"systems": [{"name": SYSTEM, "backend": "oracle"}]},
    # No ASR stage here: a fixed SyER (a fraction, 12.5%) for the score; the rules read the manifests' text.
    "challenge": {"score": {"syer": 0.125}, "rules": {"transcripts": "reference", "lexicon": "synth/lexicon.tsv"}},
}


def snakemake(workdir: Path, *args: str, configfiles: tuple[str, ...] = ("overlay.yaml",)) -> str:
    """Snakemake's output in the toy run's ``workdir`` with its config files; fails the test if it fails."""
    result = run_snakemake(workdir, *args, "--configfile", *configfiles)
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> Path:
    """A copy of the workflow with the synthetic corpus and features, run once to the fusion targets."""
    workdir = copy_workflow(tmp_path_factory.mktemp("fusion_workflow") / "workflow")
    table = fusion_synthetic.make_corpus(workdir / "synth", SIZES, seed=3)
    (workdir / "synth" / "lexicon.tsv").write_text(TOY_LEXICON, encoding="utf-8")
    fusion_synthetic.write_corpus_features(
        table,
        str(workdir / "features" / "acoustic_{split}.parquet"),
        str(workdir / "features" / "text_{split}.parquet"),
    )
    (workdir / "overlay.yaml").write_text(yaml.safe_dump(OVERLAY, allow_unicode=True), encoding="utf-8")
    snakemake(workdir, *TARGETS)
    return workdir


def _metrics(workdir: Path, variant: str) -> dict:
    return json.loads((workdir / result(paths.VARIANT_METRICS, variant)).read_text())


def test_outputs_tables_figures_and_fusion_helps(workflow):
    for target in TARGETS:
        assert (workflow / target).stat().st_size > 0
    assert (workflow / "results/figure2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (workflow / "results/figure2.svg").read_bytes()[:2000]
    headline = json.loads((workflow / "results/hybrid_metrics.json").read_text())
    assert headline == _metrics(workflow, "hybrid") and headline["selected"] == "ensemble"
    table = pd.read_csv(workflow / "results/table2.csv")
    assert table["variant"].tolist() == REPORT_VARIANTS
    assert table.loc[0, "row"].startswith("SEFE") and table.loc[1, "row"].startswith("TEFE")
    for variant in VARIANTS:
        document = _metrics(workflow, variant)
        assert set(document["splits"]) == set(SPLITS)
        row = table[table["variant"] == variant].iloc[0]
        for split in TEST_SPLITS:
            metrics = document["splits"][split]
            assert row[f"{split}_UA"] == pytest.approx(metrics["UA"])
            assert sum(metrics["support"].values()) == SIZES[split] == np.sum(metrics["confusion_matrix"])
            low, high = metrics["ci"]["WA"]
            assert low <= metrics["WA"] <= high
        if variant != "hybrid":
            assert set(document["selection"]["cv_scores"]) == {"lr", "rf", "xgboost"}
            scores = document["selection"]["cv_scores"]
            assert document["selected"] == max(scores, key=scores.get)
    markdown = (workflow / "results/table2.md").read_text()
    assert "Hybrid fusion (DFAT)" in markdown and "public_test WA" in markdown

    # The synthetic modalities are partly complementary: fusion must beat each one alone.
    def mean_ua(variant):
        return np.mean([_metrics(workflow, variant)["splits"][s]["UA"] for s in TEST_SPLITS])

    assert mean_ua("hybrid") > max(mean_ua("acoustic"), mean_ua("text")) + 0.02
    assert min(mean_ua("acoustic"), mean_ua("text")) > 0.6  # each modality alone is clearly above chance


def test_probabilities_per_classifier_and_variant(workflow):
    for split in SPLITS:
        manifest = pd.read_csv(workflow / f"results/data/speech/synth/{split}.tsv", sep="\t", quoting=3, dtype=str)
        files = [workflow / result(paths.VARIANT_PROBABILITIES, v, split=split) for v in VARIANTS]
        files += [
            workflow / result(paths.CLASSIFIER_PROBABILITIES, feature_set=fs, classifier=c, split=split)
            for fs in ("acoustic", "text", "early")
            for c in ("lr", "rf", "xgboost")
        ]
        for path in files:
            frame = pd.read_parquet(path)
            assert list(frame.columns) == ["utt_id", *CLASSES], path
            assert sorted(frame["utt_id"]) == sorted(manifest["utt_id"]), path
            np.testing.assert_allclose(frame[CLASSES].sum(axis=1), 1.0, atol=1e-6)


def test_ensemble_weights_on_the_simplex_from_training_data_only(workflow):
    payload = json.loads((workflow / f"results/systems/{SYSTEM}/ensemble/weights.json").read_text())
    weights = payload["weights"]
    assert set(weights) == {"xgboost", "rf", "lr"}
    assert min(weights.values()) >= 0 and sum(weights.values()) == pytest.approx(1.0)
    assert weights["rf"] <= 1 - weights["xgboost"] + 1e-12
    assert payload["data"]["split"] == "train" and payload["data"]["utterances"] == SIZES["train"]
    assert all(path.endswith("/train.parquet") for path in payload["data"]["files"])
    assert (payload["trials"], payload["folds"], payload["seed"]) == (30, 2, 42)
    trials = pd.read_csv(workflow / f"results/systems/{SYSTEM}/ensemble/trials.csv")
    assert len(trials) == 30 and payload["objective"]["value"] == pytest.approx(trials["value"].max())


@pytest.mark.parametrize(
    "variant,expected",
    [
        ("acoustic", {"acoustic"}),
        ("text", {"text"}),
        ("early", {"acoustic", "text"}),
        ("late", {"acoustic", "text"}),
        ("hybrid", {"acoustic", "text"}),
    ],
)
def test_each_variant_reads_only_its_features(workflow, variant, expected):
    jobs = parse_plan(snakemake(workflow, "-n", "-F", result(paths.VARIANT_METRICS, variant))).jobs
    inputs = [path for job in jobs for path in job.input]
    read = {
        modality
        for modality in ("acoustic", "text")
        if any(path.startswith(f"features/{modality}_") for path in inputs)
    }
    assert read == expected
    feature_sets = {job.wildcards["feature_set"] for job in jobs if "feature_set" in job.wildcards}
    assert (
        feature_sets
        == {
            "acoustic": {"acoustic"},
            "text": {"text"},
            "early": {"early"},
            "late": {"acoustic", "text"},
            "hybrid": {"early"},
        }[variant]
    )
    for job in jobs:
        if job.rule == "tune_ensemble":  # tuned on training files only: nothing of another split
            data = [p for p in job.input if p.endswith(".parquet")]
            # the pooled training files and the members' out-of-fold probabilities of the training split
            assert data and all(p.endswith(("/train.parquet", "/oof_train.parquet")) for p in data)


def test_config_edits_rerun_only_what_depends_on_them(workflow):
    edits = {
        "ensemble": {"fusion": {"ensemble": {"trials": 31}}},
        "xgboost": {"fusion": {"classifiers": {"xgboost": {"trials": 4}}}},
    }
    planned = {}
    for name, edit in edits.items():
        (workflow / f"edit_{name}.yaml").write_text(yaml.safe_dump(edit), encoding="utf-8")
        output = snakemake(workflow, "-n", *TARGETS, configfiles=("overlay.yaml", f"edit_{name}.yaml"))
        planned[name] = {
            (job.rule, job.wildcards.get("variant", job.wildcards.get("classifier", "")))
            for job in parse_plan(output).jobs
        }
    assert planned["ensemble"] == {
        ("tune_ensemble", ""),
        ("evaluate_variant", "hybrid"),
        ("apply_lexicon_rules", "hybrid"),
        ("challenge_report", ""),
        ("headline_metrics", ""),
        ("table2", ""),
        ("table3", ""),
        ("figure2", ""),
        ("plot_confusion_matrices", ""),
    }
    # Only the XGBoost jobs of train_classifier (its block is the xgboost job's param alone).
    classifiers = {classifier for rule, classifier in planned["xgboost"] if rule == "train_classifier"}
    rules = {rule for rule, _ in planned["xgboost"]}
    assert classifiers == {"xgboost"} and not rules & {"pool_features", "transcribe"}
    # Nothing to do without an edit.
    assert parse_plan(snakemake(workflow, "-n", *TARGETS)).jobs == []


def test_lexicon_rules_row_reassigns_matched_utterances(workflow):
    """hybrid+rules: the hybrid labels, then "khóc" / "ghét" in the transcript -> negative."""
    rules = _metrics(workflow, "hybrid+rules")
    assert rules["base_variant"] == "hybrid" and rules["title"] == "Hybrid fusion (DFAT) + lexicon rules"
    changes = pd.read_csv(workflow / f"results/systems/{SYSTEM}/challenge/rules/hybrid.tsv", sep="\t")
    assert set(changes["phrase"]) == {"khóc", "ghét"} and set(changes["split"]) == set(SPLITS)
    for split in SPLITS:
        manifest = pd.read_csv(workflow / f"results/data/speech/synth/{split}.tsv", sep="\t", quoting=3, dtype=str)
        hybrid = pd.read_parquet(workflow / result(paths.VARIANT_PROBABILITIES, "hybrid", split=split))
        after = pd.read_parquet(workflow / result(paths.VARIANT_PROBABILITIES, "hybrid+rules", split=split))
        hybrid, after = hybrid.set_index("utt_id"), after.set_index("utt_id")
        matched = manifest["text"].str.split().map(lambda words: bool({"khóc", "ghét"} & set(words)))
        expected = np.where(
            matched, "negative", np.array(CLASSES)[hybrid.loc[manifest["utt_id"], CLASSES].to_numpy().argmax(1)]
        )
        predicted = np.array(CLASSES)[after.loc[manifest["utt_id"], CLASSES].to_numpy().argmax(1)]
        assert (predicted == expected).all()
        truth = manifest["label"].to_numpy()
        assert rules["splits"][split]["WA"] == pytest.approx(np.mean(predicted == truth))
        effect = rules["lexicon_rules"]["effects"][split]
        before = np.array(CLASSES)[hybrid.loc[manifest["utt_id"], CLASSES].to_numpy().argmax(1)]
        assert effect["matched"] == matched.sum() and effect["changed"] == (before != predicted).sum()
        assert effect["fixed"] - effect["broken"] == np.sum(predicted == truth) - np.sum(before == truth)
        assert changes[changes["split"] == split]["changed"].sum() == effect["changed"]
        low, high = effect["difference"]["WA"]["ci"]
        assert low <= effect["difference"]["WA"]["difference"] <= high


def test_challenge_report_scores_every_row_on_the_test_splits(workflow):
    report = json.loads((workflow / "results/challenge.json").read_text())
    rows = {(row["split"], row["variant"]): row for row in report["rows"]}
    assert set(rows) == {(split, variant) for split in TEST_SPLITS for variant in REPORT_VARIANTS}
    for (split, variant), row in rows.items():
        wa = 100 * _metrics(workflow, variant)["splits"][split]["WA"]
        assert row["syer"] == pytest.approx(12.5) and row["ser_accuracy"] == pytest.approx(wa)
        assert row["score"] == pytest.approx(0.7 * (100 - 12.5) + 0.3 * wa)
        assert row["score_ci"][0] <= row["score"] <= row["score_ci"][1]
    assert [r["variant"] for r in report["lexicon_rules"]] == ["hybrid+rules", "hybrid+rules"]
    markdown = (workflow / "results/challenge.md").read_text()
    assert "## public_test" in markdown and "## Lexicon cue rules" in markdown and "`hybrid+rules`" in markdown


def test_challenge_switches_rerun_only_what_depends_on_them(workflow):
    """Lexicon matching reruns the +rules row and the reports; the score weights only the challenge report."""
    edits = {
        "match": {"challenge": {"rules": {"match": {"ignore_diacritics": True}}}},
        "score": {"challenge": {"score": {"ser_weight": 0.5}}},
        "off": {
            "challenge": {"rules": {"variants": []}},
            "fusion": {"figure2": {"variants": ["hybrid", "text"]}, "table3": {"variants": None}},
        },
    }
    planned = {}
    for name, edit in edits.items():
        (workflow / f"edit_{name}.yaml").write_text(yaml.safe_dump(edit), encoding="utf-8")
        output = snakemake(workflow, "-n", *TARGETS, configfiles=("overlay.yaml", f"edit_{name}.yaml"))
        planned[name] = {(job.rule, job.wildcards.get("variant", "")) for job in parse_plan(output).jobs}
    reports = {("table2", ""), ("figure2", ""), ("plot_confusion_matrices", ""), ("challenge_report", "")}
    reports |= {("table3", "")}
    assert planned["match"] == {("apply_lexicon_rules", "hybrid")} | reports
    assert planned["score"] == {("challenge_report", "")}
    assert planned["off"] == reports  # the reports lose a row; nothing else runs


def test_predict_reuses_the_rules_code(workflow):
    """predict on test-split files (toy encoder hooks) gives the hybrid variant's probabilities."""
    wav_dir = workflow / "synth" / "wav"
    some = sorted(wav_dir.glob("public_test_*.wav"))[:3]
    (workflow / "predict_in").mkdir(exist_ok=True)
    for path in some[1:]:
        shutil.copy(path, workflow / "predict_in" / path.name)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    command = [
        sys.executable,
        "-m",
        "workflow_scripts.predict",
        "--run-dir",
        "results",
        "--configfile",
        "config.yaml",
        "overlay.yaml",
        "--hook",
        "asr=fusion_synthetic:transcripts_from_table",
        "--hook",
        "sefe=fusion_synthetic:toy_acoustic_factory",
        "--hook",
        "tefe=fusion_synthetic:toy_text_factory",
        "--output",
        "predictions.json",
        str(some[0]),
        "predict_in",
    ]
    completed = subprocess.run(command, cwd=workflow, capture_output=True, text=True, timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = json.loads((workflow / "predictions.json").read_text())
    assert [Path(row["path"]).name for row in rows] == [p.name for p in some]
    rules = pd.read_parquet(workflow / result(paths.VARIANT_PROBABILITIES, "hybrid", split="public_test"))
    rules = rules.set_index("utt_id")
    for row in rows:
        probabilities = np.array([row[f"p_{c}"] for c in CLASSES])
        assert probabilities.sum() == pytest.approx(1.0)
        assert row["label"] == CLASSES[int(probabilities.argmax())]
        assert row["transcript"]
        np.testing.assert_allclose(probabilities, rules.loc[Path(row["path"]).stem, CLASSES].to_numpy(), atol=1e-6)


def _fingerprint(workdir: Path) -> dict:
    """Every tuned hyperparameter, weight and fitted model of a run."""
    found = {}
    for summary in sorted(workdir.glob("results/**/fusion/*/*/summary.json")):
        document = json.loads(summary.read_text())
        found[str(summary.parent)] = {"hyperparameters": document["hyperparameters"], "cv": document["cv"]}
        model = summary.parent / Path(paths.CLASSIFIER_MODEL).name
        found[str(model)] = hashlib.sha256(model.read_bytes()).hexdigest()
    weights = json.loads((workdir / f"results/systems/{SYSTEM}/ensemble/weights.json").read_text())
    found["weights"] = {key: weights[key] for key in ("weights", "objective", "members", "equal_weights_score")}
    found["ensemble_trials"] = (workdir / f"results/systems/{SYSTEM}/ensemble/trials.csv").read_text()
    return found


def test_leakage_dev_and_test_labels_change_no_hyperparameter_weight_or_model(workflow):
    """Fusion fits, tunes and selects on the training split only: flipping every dev and test label
    changes no tuned hyperparameter, ensemble weight or fitted model, and no training-split score."""
    before = _fingerprint(workflow)
    metrics_before = {v: _metrics(workflow, v) for v in VARIANTS}
    table = workflow / "synth" / "corpus.tsv"
    frame = pd.read_csv(table, sep="\t", dtype=str, keep_default_na=False)
    flipped_splits = ["dev", *TEST_SPLITS]
    flipped = frame["split"].isin(flipped_splits)
    frame.loc[flipped, "emotion"] = frame.loc[flipped, "emotion"].map({"neutral": "negative", "negative": "neutral"})
    frame.to_csv(table, sep="\t", index=False)
    output = snakemake(workflow, *[result(paths.VARIANT_METRICS, variant) for variant in VARIANTS])
    # really refitted and retuned
    assert "classifier=xgboost" in output and "rule tune_ensemble" in output
    assert _fingerprint(workflow) == before
    for variant in VARIANTS:
        after = _metrics(workflow, variant)
        assert after["splits"]["train"] == metrics_before[variant]["splits"]["train"]
        for split in flipped_splits:  # the flipped labels did reach the evaluation
            assert after["splits"][split]["WA"] == pytest.approx(1 - metrics_before[variant]["splits"][split]["WA"])
