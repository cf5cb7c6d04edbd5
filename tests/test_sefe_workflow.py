"""The SEFE rules: each backend receives only its own block plus preprocessing (dry runs)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run_snakemake, shared_data

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["results/sefe/handcrafted/evaluation.json", "results/sefe/wavlm/train.parquet"]


def planned_commands(tmp_path: Path, overrides: dict | None = None) -> dict[str, str]:
    """Shell command of every SEFE job of a forced dry run, keyed by output."""
    args = [sys.executable, "-m", "snakemake", *TARGETS, "-n", "-F", "-p", "--nolock"]
    if overrides is not None:
        path = tmp_path / "override.yaml"
        path.write_text(yaml.safe_dump(overrides))
        args += ["--configfile", str(path)]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    commands = {}
    for line in (result.stdout + result.stderr).splitlines():
        match = re.search(r"--output (results/sefe/\S+)", line)
        if "workflow_scripts.sefe_" in line and match:
            commands[match.group(1)] = line
    return commands


def test_editing_one_backend_reruns_no_other(tmp_path):
    base = planned_commands(tmp_path)
    assert "results/sefe/handcrafted/train.parquet" in base and "results/sefe/handcrafted/evaluation.json" in base
    assert "results/sefe/wavlm/train.parquet" in base
    edited = planned_commands(tmp_path, {"sefe": {"wavlm": {"layer": 3}, "emotion2vec": {"batch_size": 2},
                                                  "evaluation": {"C": [1.0]}}})
    for output, command in base.items():
        if "/handcrafted/" in output and output.endswith(".parquet"):
            assert edited[output] == command  # same params: nothing to rerun
        else:
            assert edited[output] != command  # wavlm extraction and the evaluation see their edits
    preprocessing = planned_commands(tmp_path, {"sefe": {"preprocessing": {"fixed_length_s": 5.0}}})
    assert all(preprocessing[o] != c for o, c in base.items() if o.endswith(".parquet"))
    assert preprocessing["results/sefe/handcrafted/evaluation.json"] == base["results/sefe/handcrafted/evaluation.json"]


def test_shipped_config_is_offline_and_weights_free():
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert config["sefe"]["backend"] == "handcrafted"
    emodb = yaml.safe_load((ROOT / "configs" / "emodb.yaml").read_text())
    assert emodb["corpora"]["emodb"]["label_map"] == {
        "neutral": "neutral", "boredom": "neutral", "happiness": "neutral",
        "anger": "negative", "sadness": "negative", "fear": "negative", "disgust": "negative"}
    assert emodb["corpora"]["emodb"]["split"]["speaker_disjoint"] is True


@pytest.mark.slow
def test_emodb_acoustic_evaluation_is_clearly_above_chance(workflow_dir):
    """configs/emodb.yaml: weights-free features of real acted speech, speaker-independent test splits."""
    corpus = shared_data("speech", "emodb_2s")
    paths = workflow_dir / "emodb_paths.yaml"  # the copy is not beside ../shared: absolute paths
    paths.write_text(yaml.safe_dump({"corpora": {"emodb": {"table": str(corpus / "labels.tsv"),
                                                           "audio_root": str(corpus)}}}))
    run_snakemake(workflow_dir, "results/sefe/handcrafted/evaluation.json",
                  "--configfile", "configs/emodb.yaml", str(paths), timeout=1800)
    evaluation = json.loads((workflow_dir / "results/sefe/handcrafted/evaluation.json").read_text())
    assert evaluation["train"]["utterances"] > 250
    for split in ("public_test", "private_test"):
        scores = evaluation["splits"][split]
        print(split, {k: round(scores[k], 3) for k in ("WA", "UA", "WF1")})
        assert scores["UA"] > 0.62, (split, scores["UA"])  # chance UA is 0.5
