"""The whole demo DAG end to end, then what Snakemake reruns after single edits, and kill safety.

One complete run of the shipped config (module fixture, several minutes on 2 cores); every
other test reads Snakemake's own dry-run plan ("Job stats") after one edit of config.yaml,
restoring it afterwards, so the complete run is shared.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from workflow_scripts.common import paths

from snakemake_runner import dry_run, run_snakemake, start_snakemake
from workflow_copy import copy_workflow

pytestmark = pytest.mark.slow

ASR_RULES = {"build_demo_asr_model", "finetune_whisper", "transcribe", "score_asr", "benchmark_asr_backbones"}
FEATURE_RULES = {"extract_sefe", "extract_tefe", "pool_features"}
# The demo's ASR systems; the primary one (the first) is behind hybrid_metrics.json, Table 2 and predict.
SYSTEMS = ["finetuned", "early", "oracle"]
PRIMARY = f"{paths.RESULTS}/{paths.system_scope(SYSTEMS[0])}"
SHARED = f"{paths.RESULTS}/{paths.SHARED_SCOPE}"
TEST_SPLITS = ["public_test", "private_test"]
CLASSES = ["neutral", "negative"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    directory = copy_workflow(tmp_path_factory.mktemp("demo") / "workflow")
    run_snakemake(directory, timeout=3000)
    return directory


def _plan(directory: Path, *args: str) -> dict[str, int]:
    return dry_run(directory, *args).counts


@pytest.fixture
def edit_config(demo_run) -> Iterator:
    """Apply one regex edit to config.yaml; the original is restored after the test."""
    path = demo_run / "config.yaml"
    original = path.read_text(encoding="utf-8")

    def edit(pattern: str, replacement: str) -> None:
        edited, count = re.subn(pattern, replacement, original, count=1, flags=re.MULTILINE)
        assert count == 1, f"pattern {pattern!r} not in config.yaml"
        path.write_text(edited, encoding="utf-8")

    yield edit
    path.write_text(original, encoding="utf-8")


def _wa_ua_wf1(path: Path, split: str) -> tuple[float, float, float]:
    metrics = json.loads(path.read_text())["splits"][split]
    return metrics["WA"], metrics["UA"], metrics["WF1"]


def test_hybrid_fusion_beats_each_modality_and_the_paper_artifacts_exist(demo_run):
    # The demo corpus puts some negatives' emotion only in the words and others' only in the
    # voice; hybrid fusion must beat acoustic-only and text-only on the test splits (mean UA over
    # both, with a margin; per split it is printed for the note).
    mean_ua = {}
    for variant in ("acoustic", "text", "early", "late", "hybrid"):
        scores = []
        where = SHARED if variant == "acoustic" else PRIMARY  # acoustic only: shared by the systems
        for split in TEST_SPLITS:
            wa, ua, wf1 = _wa_ua_wf1(demo_run / where / "metrics" / f"{variant}.json", split)
            print(f"{split} {variant}: WA {wa:.3f} UA {ua:.3f} WF1 {wf1:.3f}")
            assert ua > 0.6, (split, variant, ua)
            scores.append(ua)
        mean_ua[variant] = sum(scores) / len(scores)
    assert mean_ua["hybrid"] > max(mean_ua["acoustic"], mean_ua["text"]) + 0.03, mean_ua
    assert json.loads((demo_run / "results" / "hybrid_metrics.json").read_text())
    for name in ("table2.md", "table2.csv", "table3.md", "figure2.png", "figure2.svg"):
        assert (demo_run / "results" / name).stat().st_size > 0, name
    assert (demo_run / PRIMARY / "ensemble" / "weights.json").stat().st_size > 0
    for split in TEST_SPLITS:
        assert json.loads((demo_run / PRIMARY / "asr" / f"wer_{split}.json").read_text())["wer"] < 0.5
    # Table 3 and Figure 2: every ASR system, from this one run; the oracle's WER is 0, the early checkpoint's
    # above the fine-tuned model's.
    table3 = pd.read_csv(demo_run / "results" / "table3.csv")
    assert list(dict.fromkeys(table3["system"])) == SYSTEMS
    wer = table3.groupby("system")["public_test_wer"].first()
    assert wer["oracle"] == 0 and wer["early"] > wer["finetuned"], wer
    points = pd.read_csv(demo_run / "results" / "figure2_points.csv")
    assert set(points["run"]) == set(SYSTEMS)
    # The neural head and its ablations (fusion.heads.variants) are rows of Table 2.
    table = (demo_run / "results" / "table2.csv").read_text()
    for variant in ("xattn", "xattn_mean", "xattn_concat", "xattn_finetune"):
        assert json.loads((demo_run / PRIMARY / "metrics" / f"{variant}.json").read_text())["splits"].keys() >= set(
            TEST_SPLITS
        )
        assert variant in table, variant


def test_challenge_score_reads_each_test_splits_syer_from_the_primary_asr_system(demo_run):
    """challenge.json from the real report rule with the demo's real (non-zero) SyER: per split, the
    primary system's wer_<split>.json syer (a fraction) as a percentage, and the score
    asr_weight x (100 - SyER) + ser_weight x 100 x WA of the variant's metrics file."""
    block = yaml.safe_load((demo_run / "config.yaml").read_text())["challenge"]["score"]
    report = json.loads((demo_run / "results" / "challenge.json").read_text())
    syer = {
        split: 100 * json.loads((demo_run / PRIMARY / "asr" / f"wer_{split}.json").read_text())["syer"]
        for split in TEST_SPLITS
    }
    # Distinct, non-zero values per split: a fraction/percent mix-up or swapped splits would show.
    assert len(set(syer.values())) == len(TEST_SPLITS) and min(syer.values()) > 1, syer
    assert report["syer"] == pytest.approx(syer)
    assert {row["split"] for row in report["rows"]} == set(TEST_SPLITS)
    for row in report["rows"]:
        where = SHARED if row["variant"] == "acoustic" else PRIMARY
        wa = _wa_ua_wf1(demo_run / where / "metrics" / f"{row['variant']}.json", row["split"])[0]
        assert row["syer"] == pytest.approx(syer[row["split"]]), row
        assert row["ser_accuracy"] == pytest.approx(100 * wa), row
        assert row["score"] == pytest.approx(
            block["asr_weight"] * (100 - syer[row["split"]]) + block["ser_weight"] * 100 * wa
        ), row


@pytest.mark.parametrize("variant", ["hybrid", "xattn", "xattn_finetune", "graph", "vote"])
def test_predict_on_demo_files_matches_the_rules(demo_run, tmp_path, variant):
    """predict with the real ASR, SEFE and TEFE stages gives the rule's transcripts and probabilities
    (the hybrid; a neural head on frames and token states; the head with its fine-tuned text encoder;
    the graph head with prosody tokens; the vote of graph seeds and the hybrid)."""
    manifest = pd.read_csv(demo_run / "results/data/speech/demo/public_test.tsv", sep="\t").head(3)
    audio = [str(demo_run / path) for path in manifest["audio_path"]]  # manifests hold workflow-relative paths
    output = tmp_path / "predictions.csv"
    command = [sys.executable, "-m", "workflow_scripts.predict", "--run-dir", "results", "--variant", variant]
    result = subprocess.run(
        [*command, "--output", str(output), *audio],
        cwd=demo_run,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHONPATH=str(demo_run)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    predicted = pd.read_csv(output).assign(utt_id=lambda frame: frame["path"].map(lambda p: Path(p).stem))
    predicted = predicted.set_index("utt_id").loc[manifest["utt_id"]]
    rule = pd.read_parquet(demo_run / PRIMARY / f"fusion/variants/{variant}/public_test.parquet").set_index("utt_id")
    transcripts = pd.read_parquet(demo_run / PRIMARY / "transcripts/public_test.parquet").set_index("utt_id")
    columns = [f"p_{c}" for c in CLASSES]
    np.testing.assert_allclose(predicted[columns].sum(axis=1), 1.0, atol=1e-6)
    # docs/fusion.md states this tolerance (predict vs the rules' probabilities on the demo).
    np.testing.assert_allclose(predicted[columns].to_numpy(), rule.loc[predicted.index, CLASSES].to_numpy(), atol=1e-6)
    assert (predicted["label"] == [CLASSES[i] for i in predicted[columns].to_numpy().argmax(axis=1)]).all()
    assert predicted["transcript"].fillna("").tolist() == transcripts.loc[predicted.index, "hypothesis"].tolist()


def test_report_collects_the_paper_artifacts(demo_run, tmp_path):
    report = tmp_path / "report.html"
    result = run_snakemake(demo_run, "--report", str(report))
    added = set(re.findall(r"Adding (\S+)", result.stdout + result.stderr))
    assert {
        "table2.md",
        "table2.csv",
        "figure2.png",
        "figure2.svg",
        "hybrid_metrics.json",
        "weights.json",
        "confusion_matrices.png",
        "benchmark.md",
        "wer_public_test.json",
    } <= added, added
    assert report.stat().st_size > 100_000


def test_second_run_has_nothing_to_do(demo_run):
    assert _plan(demo_run) == {}


def test_editing_the_ensemble_reruns_only_the_ensemble_its_metrics_and_the_report(demo_run, edit_config):
    edit_config(r"(ensemble: \{trials: )(\d+)", r"\g<1>7")
    plan = _plan(demo_run)
    # One per ASR system; hybrid only.
    assert plan.pop("tune_ensemble") == 3 and plan.pop("evaluate_variant") == 3
    # The report rules, and what follows the hybrid row: the hybrid+rules row, the challenge report
    # and the vote (hybrid is one of its members).
    report = {"headline_metrics", "table2", "table3", "figure2", "plot_confusion_matrices", "all"}
    assert set(plan) <= report | {"apply_lexicon_rules", "challenge_report", "evaluate_vote"}, plan


def test_editing_xgboost_reruns_no_lr_rf_features_or_asr(demo_run, edit_config):
    edit_config(r"^(      trials: )(\d+)", r"\g<1>5")
    plan = _plan(demo_run)
    # The XGBoost job of each feature set (acoustic: shared; text and early: of each ASR system), no LR or RF job.
    assert plan["train_classifier"] == 1 + 2 * 3
    assert not set(plan) & ({"train_tefe"} | FEATURE_RULES | ASR_RULES), plan


def test_editing_sefe_reruns_no_asr_and_no_tefe_training(demo_run, edit_config):
    edit_config(r"^(    n_mfcc: )(\d+)", r"\g<1>13")
    plan = _plan(demo_run)
    assert plan["extract_sefe"] == 4
    assert not set(plan) & (ASR_RULES | {"train_tefe", "extract_tefe", "build_tefe_embedding"}), plan


def test_adding_a_variant_to_figure2_reuses_every_feature_and_model(demo_run, edit_config):
    edit_config(r"^(    variants: \[hybrid, hybrid\+rules, text)\]", r"\g<1>, early, late]")
    plan = _plan(demo_run)
    assert set(plan) <= {"figure2", "all"}, plan


def test_touching_a_large_feature_file_does_not_cascade(demo_run):
    features = demo_run / PRIMARY / "tefe" / "features" / "train.parquet"
    assert features.stat().st_size > 1_000_000  # above Snakemake's default checksum limit
    future = time.time() + 5
    os.utime(features, (future, future))
    assert _plan(demo_run) == {}


def test_sigkill_mid_training_then_rerun_incomplete_gives_the_same_metrics(demo_run):
    """SIGKILL while the early-fusion XGBoost is being tuned, then --rerun-incomplete: the same
    metrics, nothing half-written, nothing left to do. (The fusion training is the cheapest
    training of the DAG to redo; every training rule writes through the same atomic outputs.)"""
    results = demo_run / "results"
    primary = "systems/finetuned"
    before = {name: (results / name).read_text() for name in ("hybrid_metrics.json", f"{primary}/metrics/early.json")}
    model = results / primary / "fusion" / "early" / "xgboost" / "model.skops"
    # Remove the tuned model and everything that reads it, so the killed run is one that must
    # rebuild it (Snakemake does not regenerate a missing file whose consumers are complete).
    for path in (
        f"{primary}/fusion/early/xgboost",
        f"{primary}/ensemble",
        f"{primary}/metrics/early.json",
        f"{primary}/metrics/hybrid.json",
        "hybrid_metrics.json",
    ):
        target = results / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    log_path = demo_run / "killed_run.log"
    # The store of kept results off (config keep): the demo run kept this model, and the job would
    # restore it in an instant instead of tuning (tests/test_keep.py tests the store).
    no_store = ("--config", "keep=False")
    with open(log_path, "w") as log:
        process = start_snakemake(demo_run, *no_store, log=log)
    started = re.compile(
        r"rule train_classifier:\n(?:    .*\n)*?"
        r"    wildcards: scope=systems/finetuned, feature_set=early, classifier=xgboost"
    )
    deadline = time.time() + 600
    while not started.search(log_path.read_text()) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # mid-tuning
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert started.search(log_path.read_text())
    assert not model.exists(), "the tuning finished before the kill: the test killed nothing"
    run_snakemake(demo_run, "--unlock")  # a killed Snakemake leaves its lock behind
    run_snakemake(demo_run, "--rerun-incomplete", *no_store, timeout=3000)
    assert {name: (results / name).read_text() for name in before} == before
    assert model.exists()
    assert _plan(demo_run) == {}
