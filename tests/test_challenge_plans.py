"""Each switch of the challenge's practice reruns only what depends on it, in the whole default DAG
of the demo (outputs stood in for by empty files, nothing run: tests/rerun_plans.py)."""

from __future__ import annotations

import pytest
import yaml
from rerun_plans import copy_stand_in, job_system, planned, stand_in_run

# Whole-DAG dry runs: about 10 s to stand in the run, 3-5 s per plan on an idle 2-core machine
# (100 s in all under a load of 12), over the ~30 s budget of a fast test.
pytestmark = pytest.mark.slow

# Never rerun by a switch that acts after them.
DATA_AND_MODELS = {"synthesize_demo_corpus", "ingest_speech_corpus", "ingest_text_corpus", "build_demo_asr_model"}
# (tefe_table reads the test splits' transcripts: it does rerun when they change.)
TEXT_ENCODERS = {"build_tefe_embedding", "train_tefe", "select_tefe"}
REPORTS = {"table2", "table3", "figure2", "plot_confusion_matrices", "challenge_report"}
# The demo's ASR systems with a model (the oracle's transcripts are the reference text).
MODEL_SYSTEMS = ["finetuned", "early"]


@pytest.fixture
def demo(stand_in_demo):
    return stand_in_demo  # the session's stand-in run (conftest), shared with the other plan tests


def plan(directory, name, edit, inputs=False):
    path = directory / f"edit_{name}.yaml"
    path.write_text(yaml.safe_dump(edit))
    return planned(directory, "--configfile", str(path), inputs=inputs)


def test_speed_perturbation_reruns_asr_training_and_what_reads_transcripts(demo):
    jobs = plan(demo, "speed", {"asr": {"finetune": {"speed_perturbation": {"enabled": True}}}})
    # The systems of the fine-tuning run (its model and its snapshot), not the oracle.
    assert len(jobs["finetune_whisper"]) == 1 and len(jobs["transcribe"]) == 8 and len(jobs["score_asr"]) == 8
    assert {job["system"] for job in jobs["transcribe"]} == set(MODEL_SYSTEMS)
    assert not set(jobs) & (DATA_AND_MODELS | TEXT_ENCODERS | {"extract_sefe", "evaluate_sefe"})
    # Only the text modality is pooled again; the acoustic-only (shared) results stay.
    fusion = [job for rule in ("pool_features", "train_classifier", "evaluate_variant") for job in jobs[rule]]
    assert {job_system(job) for job in fusion} == set(MODEL_SYSTEMS)
    assert sorted(job_system(j) for j in jobs["pool_features"]) == sorted(MODEL_SYSTEMS)
    rules_rows = sorted((job_system(j), j["variant"]) for j in jobs["apply_lexicon_rules"])
    assert rules_rows == [(system, "hybrid") for system in sorted(MODEL_SYSTEMS)] and REPORTS <= set(jobs)


def test_lexicon_rules_switch_reruns_only_the_rules_row_and_reports(demo):
    jobs = plan(demo, "match", {"challenge": {"rules": {"match": {"ignore_diacritics": True}}}})
    assert set(jobs) == {"apply_lexicon_rules", "all"} | REPORTS
    off = {
        "challenge": {"rules": {"variants": []}},
        "fusion": {
            "figure2": {"variants": ["hybrid", "text"]},
            "table3": {"variants": ["text", "early", "late", "hybrid"]},
        },
    }
    assert set(plan(demo, "off", off)) == {"all"} | REPORTS
    more = plan(demo, "more", {"challenge": {"rules": {"variants": ["hybrid", "text"]}}})
    # A text+rules row: Table 2, the confusion matrices and the challenge report (the primary ASR system's);
    # neither Figure 2 nor Table 3 (fusion.table3.variants) shows it, so no other system makes it.
    assert more["apply_lexicon_rules"] == [{"scope": "systems/finetuned", "variant": "text"}]
    assert set(more) == {"apply_lexicon_rules", "all"} | REPORTS - {"figure2", "table3"}


def test_challenge_score_weights_rerun_only_the_challenge_report(demo):
    assert set(plan(demo, "score", {"challenge": {"score": {"ser_weight": 0.5}}})) == {"challenge_report", "all"}


def test_augmentation_adds_only_its_row_and_reads_only_training_audio(demo):
    jobs = plan(demo, "augment", {"challenge": {"augmentation": {"enabled": True}}}, inputs=True)
    assert set(jobs) == {
        "augment_training_audio",
        "extract_sefe_augmented",
        "pool_augmented_acoustic",
        "train_classifier",
        "evaluate_variant",
        "all",
    } | REPORTS - {"figure2", "table3"}  # acoustic only: shared by every ASR system, not in Table 3
    assert {job["feature_set"] for job in jobs["train_classifier"]} == {"acoustic_aug"}
    assert [job["variant"] for job in jobs["evaluate_variant"]] == ["acoustic_aug"]
    # Leakage: the copies are made from the training manifest alone; the augmented features are
    # extracted from the copies alone; only the training split's pooled file gets them.
    (augment,) = jobs["augment_training_audio"]
    data = [p for p in augment["input"].split(", ") if not p.startswith("workflow_scripts/")]
    assert data == ["results/data/speech/demo/train.tsv"]
    (extract,) = jobs["extract_sefe_augmented"]
    assert [p for p in extract["input"].split(", ") if not p.startswith("workflow_scripts/")] == [
        "results/augment/train.tsv"
    ]
    (pool,) = jobs["pool_augmented_acoustic"]
    assert "results/sefe/handcrafted/train_augmented.parquet" in pool["input"]
    assert "augment" not in " ".join(p for p in pool["input"].split(", ") if "dev" in p or "test" in p)
    # Its settings rerun the augmentation, not the other acoustic jobs.
    changed = plan(demo, "copies", {"challenge": {"augmentation": {"enabled": True, "copies": 3}}})
    assert "extract_sefe" not in changed and "pool_features" not in changed


def test_augmentation_for_asr_reruns_asr_training_and_what_reads_transcripts(demo):
    jobs = plan(demo, "augment_asr", {"challenge": {"augmentation": {"asr": True}}}, inputs=True)
    assert len(jobs["augment_training_audio"]) == 1 and len(jobs["finetune_whisper"]) == 1
    # Every ASR system with a model of the fine-tuning run (its model and its snapshot) retranscribes.
    assert sorted(job["system"] for job in jobs["transcribe"]) == sorted(MODEL_SYSTEMS * 4)
    # Only the text modality is pooled again (no shared acoustic job).
    assert sorted(job_system(j) for j in jobs["pool_features"]) == sorted(MODEL_SYSTEMS)
    # Not the acoustic_aug row (challenge.augmentation.enabled), SEFE or the text encoders' training.
    assert not set(jobs) & (
        DATA_AND_MODELS
        | TEXT_ENCODERS
        | {"extract_sefe", "evaluate_sefe", "extract_sefe_augmented", "pool_augmented_acoustic"}
    )
    # Not the shared (acoustic-only) rows; the text rows are per system.
    assert {job_system(job) for job in jobs["evaluate_variant"]} == set(MODEL_SYSTEMS)
    # Leakage: the copies come from the training manifest alone and are ASR training data; dev
    # selects the checkpoint as before; no test manifest is read.
    (augment,) = jobs["augment_training_audio"]
    assert [p for p in augment["input"].split(", ") if not p.startswith("workflow_scripts/")] == [
        "results/data/speech/demo/train.tsv"
    ]
    (finetune,) = jobs["finetune_whisper"]
    manifests = [p for p in finetune["input"].split(", ") if p.endswith(".tsv")]
    assert sorted(manifests) == sorted(
        ["results/data/speech/demo_asr/train.tsv", "results/augment/train.tsv", "results/data/speech/demo/dev.tsv"]
    )


def test_augmentation_for_asr_keeps_the_copies_and_the_acoustic_aug_row(demo, tmp_path):
    # A run with the acoustic_aug row built: switching the copies into ASR training reruns
    # neither the copies nor the row (the switch is not a parameter of augment_training_audio).
    directory = copy_stand_in(demo, tmp_path / "workflow")  # the demo's run, then the row's jobs
    row = directory / "row.yaml"
    row.write_text(yaml.safe_dump({"challenge": {"augmentation": {"enabled": True}}}))
    stand_in_run(directory, "--configfile", str(row), force=False)
    jobs = plan(directory, "both", {"challenge": {"augmentation": {"enabled": True, "asr": True}}})
    assert "finetune_whisper" in jobs
    assert not set(jobs) & {"augment_training_audio", "extract_sefe_augmented", "pool_augmented_acoustic"}
    assert "acoustic_aug" not in {w["variant"] for w in jobs.get("evaluate_variant", [])}
