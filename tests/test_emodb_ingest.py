"""Ingestion of a real corpus: EmoDB (German acted speech, 22,050 Hz, 2 s clips, 10 speakers)."""

from __future__ import annotations

import pandas as pd
import yaml

from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.data.ingest_speech import build_speech_manifest

from conftest import PROJECT_ROOT, shared_data

# The shipped EmoDB config's binary mapping (tests/test_sefe_workflow.py checks its content).
BINARY = yaml.safe_load((PROJECT_ROOT / "configs" / "emodb.yaml").read_text())["corpora"]["emodb"]["label_map"]


def test_emodb_ingests_with_speaker_disjoint_stratified_splits():
    table = shared_data("speech", "emodb_2s", "labels.tsv")
    spec = block_defaults(
        "corpora.emodb",
        {
            "table": str(table),
            "columns": {
                "utt_id": "utt_id",
                "audio_path": "path",
                "text": "text",
                "label": "emotion",
                "speaker": "speaker",
            },
            "label_map": BINARY,
            "split": {
                "policy": "stratified",
                "fractions": {"train": 0.6, "dev": 0.2, "test": 0.2},
                "speaker_disjoint": True,
            },
            "require_text": True,
        },
    )
    splits = ["train", "dev", "test"]
    manifest, skipped, summary = build_speech_manifest(spec, ["neutral", "negative"], splits, seed=42, threads=2)
    raw = pd.read_csv(table, sep="\t", quoting=3)
    assert len(manifest) == len(raw) == 535 and skipped.empty
    assert set(manifest["sample_rate"]) == {22050}
    assert manifest["duration_s"].round(3).eq(2.0).all()
    assert (manifest["label"] == "neutral").sum() == (raw["emotion"].isin(["neutral", "boredom", "happiness"])).sum()
    per_speaker = manifest.groupby("speaker")["split"].nunique()
    assert len(per_speaker) == 10 and (per_speaker == 1).all()
    assert all(summary["counts"][s]["neutral"] > 0 and summary["counts"][s]["negative"] > 0 for s in splits)
    assert manifest["audio_path"].str.endswith(".wav").all()
