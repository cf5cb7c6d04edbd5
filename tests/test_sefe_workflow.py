"""The SEFE rules: each backend receives only its own block plus preprocessing (touch runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import run_snakemake, shared_data
from snakemake_runner import parse_plan
from workflow_copy import recorded_params

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["results/sefe/handcrafted/evaluation.json", "results/sefe/wavlm/train.parquet"]
OUTPUTS = [f"results/sefe/handcrafted/{split}.parquet" for split in ("train", "dev", "public_test", "private_test")]
OUTPUTS += TARGETS


def planned_params(directory: Path, overrides: dict | None = None) -> dict[str, list[str]]:
    """Recorded params of every SEFE job of a forced touch run (nothing runs), keyed by output."""
    args = ["--touch", "-F", *TARGETS]
    if overrides is not None:
        path = directory / "override.yaml"
        path.write_text(yaml.safe_dump(overrides))
        args += ["--configfile", str(path)]
    run_snakemake(directory, *args, timeout=120)
    params = recorded_params(directory, OUTPUTS)
    assert all(value is not None for value in params.values()), params
    return params


def test_editing_one_backend_reruns_no_other(workflow_dir):
    base = planned_params(workflow_dir)
    assert any("microsoft/wavlm-large" in value for value in base["results/sefe/wavlm/train.parquet"])
    edited = planned_params(
        workflow_dir, {"sefe": {"wavlm": {"layer": 3}, "emotion2vec": {"batch_size": 2}, "evaluation": {"C": [1.0]}}}
    )
    for output, params in base.items():
        if "/handcrafted/" in output and output.endswith(".parquet"):
            assert edited[output] == params  # same params: nothing to rerun
        else:
            assert edited[output] != params  # wavlm extraction and the evaluation see their edits
    preprocessing = planned_params(workflow_dir, {"sefe": {"preprocessing": {"fixed_length_s": 5.0}}})
    assert all(preprocessing[o] != p for o, p in base.items() if o.endswith(".parquet"))
    assert preprocessing["results/sefe/handcrafted/evaluation.json"] == base["results/sefe/handcrafted/evaluation.json"]


def test_shipped_config_is_offline_and_weights_free():
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert config["sefe"]["backend"] == "handcrafted"
    emodb = yaml.safe_load((ROOT / "configs" / "emodb.yaml").read_text())
    assert emodb["corpora"]["emodb"]["label_map"] == {
        "neutral": "neutral",
        "boredom": "neutral",
        "happiness": "neutral",
        "anger": "negative",
        "sadness": "negative",
        "fear": "negative",
        "disgust": "negative",
    }
    assert emodb["corpora"]["emodb"]["split"]["speaker_disjoint"] is True


def test_emodb_config_plans_its_targets_standalone(workflow_dir):
    """configs/emodb.yaml alone (no overlay), from a checkout beside ../shared: only its SEFE jobs are planned."""
    corpus = shared_data("speech", "emodb_2s")
    (workflow_dir.parent / "shared").symlink_to(corpus.parents[2], target_is_directory=True)
    handcrafted = "results/sefe/handcrafted/evaluation.json"
    whisper = "results/sefe/whisper_encoder/evaluation.json"
    result = run_snakemake(workflow_dir, "-n", "--configfile", "configs/emodb.yaml", "--", handcrafted, whisper)
    assert parse_plan(result.stdout).counts == {
        "ingest_speech_corpus": 1,
        "assemble_whisper_base": 1,
        "convert_whisper_base": 1,
        "extract_sefe_layers": 2,  # layer: auto - the training and selection (dev) splits only
        "choose_sefe_layer": 1,
        "extract_sefe": 8,
        "evaluate_sefe": 2,
    }


@pytest.mark.slow
def test_emodb_acoustic_evaluation_is_clearly_above_chance(workflow_dir):
    """configs/emodb.yaml: weights-free features of real acted speech, speaker-independent test splits."""
    corpus = shared_data("speech", "emodb_2s")
    paths = workflow_dir / "emodb_paths.yaml"  # the copy is not beside ../shared: absolute paths
    paths.write_text(
        yaml.safe_dump({"corpora": {"emodb": {"table": str(corpus / "labels.tsv"), "audio_root": str(corpus)}}})
    )
    run_snakemake(
        workflow_dir,
        "results/sefe/handcrafted/evaluation.json",
        "--configfile",
        "configs/emodb.yaml",
        str(paths),
        timeout=1800,
    )
    evaluation = json.loads((workflow_dir / "results/sefe/handcrafted/evaluation.json").read_text())
    assert evaluation["train"]["n"] > 250
    for split in ("public_test", "private_test"):
        scores = evaluation["splits"][split]
        print(split, {k: round(scores[k], 3) for k in ("WA", "UA", "WF1")})
        assert scores["UA"] > 0.62, (split, scores["UA"])  # chance UA is 0.5
