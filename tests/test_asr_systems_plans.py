"""Adding, removing or editing an ASR system (asr.systems) reruns only that system's chain, in the whole
default DAG of the demo (outputs stood in for by empty files, nothing run: tests/rerun_plans.py)."""

from __future__ import annotations

import pytest
import yaml
from rerun_plans import job_system, planned

from workflow_copy import PROJECT_ROOT

# Whole-DAG dry runs: about 10 s to stand in the run, 3-5 s per plan on an idle 2-core machine.
pytestmark = pytest.mark.slow

DEMO_SYSTEMS = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())["asr"]["systems"]
# What one more system runs: its transcripts and scores, its text features, its text-dependent fusion.
SYSTEM_CHAIN = {
    "transcribe": 4,
    "score_asr": 4,
    "extract_tefe": 4,
    "pool_features": 1,  # text
    "train_classifier": 6,  # text and early x lr, rf, xgboost
    "tune_ensemble": 1,
    "evaluate_variant": 4,  # text, early, late, hybrid
    "apply_lexicon_rules": 1,  # hybrid+rules
}
TABLES = {"table3", "figure2", "all"}


@pytest.fixture
def demo(stand_in_demo):
    return stand_in_demo  # the session's stand-in run (conftest), shared with the other plan tests


def plan(directory, name, systems, **more):
    path = directory / f"edit_{name}.yaml"
    path.write_text(yaml.safe_dump({"asr": {"systems": systems, **more}}))
    return planned(directory, "--configfile", str(path))


def test_demo_lists_the_oracle_the_finetuned_model_and_an_early_checkpoint():
    assert [s["name"] for s in DEMO_SYSTEMS] == ["finetuned", "early", "oracle"]
    assert DEMO_SYSTEMS[1]["model"].startswith("results/asr/snapshots/step-")


def test_adding_a_system_runs_only_its_chain_and_the_tables(demo):
    untrained = {"name": "untrained", "model": "results/asr/init_model", "max_new_tokens": 20}
    jobs = plan(demo, "add", [*DEMO_SYSTEMS, untrained])
    assert {rule: len(found) for rule, found in jobs.items() if rule not in TABLES} == SYSTEM_CHAIN
    assert set(jobs) == set(SYSTEM_CHAIN) | TABLES
    assert all(job_system(job) == "untrained" for rule in SYSTEM_CHAIN for job in jobs[rule])
    # Its text features only (the reference features are the primary system's, once).
    assert {job["feature_set"] for job in jobs["extract_tefe"]} == {"features"}


def test_removing_a_system_reruns_only_the_tables(demo):
    assert set(plan(demo, "remove", [DEMO_SYSTEMS[0], DEMO_SYSTEMS[2]])) == TABLES


def test_editing_one_system_reruns_only_its_chain(demo):
    edited = [DEMO_SYSTEMS[0], {**DEMO_SYSTEMS[1], "num_beams": 2}, DEMO_SYSTEMS[2]]
    jobs = plan(demo, "edit", edited)
    assert set(jobs) == set(SYSTEM_CHAIN) | TABLES
    assert all(job_system(job) == "early" for rule in SYSTEM_CHAIN for job in jobs[rule])


def test_another_primary_system_retrains_nothing_shared(demo):
    jobs = plan(demo, "primary", DEMO_SYSTEMS, primary_system="oracle")
    # The primary system's reports; the reference-text features move to its directory (tefe.reference_features);
    # the rows only Table 2 shows (the demo's neural heads and the vote) are now made for it.
    reports = {"headline_metrics", "table2", "plot_confusion_matrices", "challenge_report", "tefe_table", "all"}
    table2_only = {"extract_tefe_tokens", "train_xattn", "train_graph", "evaluate_vote"}
    assert reports <= set(jobs) <= reports | table2_only | {"extract_tefe"}
    assert {(job["system"], job["feature_set"]) for job in jobs["extract_tefe"]} == {("oracle", "features_reference")}
    assert all(job_system(job) == "oracle" for rule in table2_only & set(jobs) for job in jobs[rule])
