"""Issue 28's acoustic options in the whole default DAG of the demo (outputs stood in for, nothing run:
tests/rerun_plans.py): the eGeMAPS reference row and the VAD of each stage rerun only what reads them."""

from __future__ import annotations

import pytest
import yaml
from rerun_plans import planned

from workflow_scripts.common import paths

# Whole-DAG dry runs (see tests/test_challenge_plans.py): a few seconds per plan on an idle machine.
pytestmark = pytest.mark.slow

REPORTS = {"table2", "plot_confusion_matrices", "challenge_report"}


def plan(directory, name, edit):
    path = directory / f"edit_{name}.yaml"
    path.write_text(yaml.safe_dump(edit))
    return planned(directory, "--configfile", str(path))


def test_the_egemaps_row_adds_only_its_own_chain_and_the_reports(stand_in_demo):
    jobs = plan(stand_in_demo, "egemaps", {"fusion": {"reference_variants": ["acoustic_egemaps"]}})
    assert {job["backend"] for job in jobs["extract_sefe"]} == {"egemaps"} and len(jobs["extract_sefe"]) == 4
    assert [(j["scope"], j["modality"]) for j in jobs["pool_features"]] == [(paths.SHARED_SCOPE, "acoustic_egemaps")]
    assert {(j["scope"], j["feature_set"]) for j in jobs["train_classifier"]} == {
        (paths.SHARED_SCOPE, "acoustic_egemaps")
    }
    assert len(jobs["train_classifier"]) == 3
    assert [j["variant"] for j in jobs["evaluate_variant"]] == ["acoustic_egemaps"]
    assert set(jobs) == {"extract_sefe", "pool_features", "train_classifier", "evaluate_variant", "all"} | REPORTS


def test_the_sefe_vad_reruns_the_acoustic_side_and_no_asr(stand_in_demo):
    jobs = plan(stand_in_demo, "sefe_vad", {"sefe": {"preprocessing": {"vad": {"enabled": True}}}})
    assert {"extract_sefe", "extract_sefe_frames", "extract_prosody_f0"} <= set(jobs)
    assert not {"transcribe", "finetune_whisper", "score_asr", "extract_tefe"} & set(jobs)


def test_the_asr_vad_reruns_transcription_and_no_acoustic_features(stand_in_demo):
    jobs = plan(stand_in_demo, "asr_vad", {"asr": {"transcribe": {"vad": {"enabled": True}}}})
    assert "transcribe" in jobs and "score_asr" in jobs
    assert not {"extract_sefe", "extract_sefe_frames", "finetune_whisper"} & set(jobs)
