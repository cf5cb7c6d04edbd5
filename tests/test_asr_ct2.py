"""ASR backend ct2 (faster-whisper / CTranslate2) on the real Whisper base of the `weights` extra."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import torch

from workflow_scripts.asr.backends import ct2_compute_type, inference_dtype
from workflow_scripts.asr.text import NormalizeConfig, score_transcripts
from workflow_scripts.asr.transcribe import transcribe_split
from workflow_scripts.asr.transcripts import TRANSCRIPT_COLUMNS, read_transcripts
from workflow_scripts.common.config_schema import block_defaults

from weights_fixtures import ENGLISH, write_english_manifest


def test_compute_types():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert ct2_compute_type("auto", cpu) == "int8" and ct2_compute_type("auto", cuda) == "float16"
    assert ct2_compute_type("fp32", cpu) == "float32" and ct2_compute_type("fp16", cpu) == "float32"
    with pytest.raises(ValueError, match="ct2 backend only"):
        inference_dtype("int8", cpu)


def test_ct2_zero_shot_english_and_the_transcripts_contract(whisper_base_ct2, tmp_path):  # noqa: F811
    """espeak-ng English of common words: the transcripts contract, in manifest order, WER <= 0.15."""
    manifest = write_english_manifest(tmp_path)
    block = block_defaults(
        "asr.transcribe",
        {
            "backend": "ct2",
            "model": str(whisper_base_ct2),
            "language": "en",
            "precision": "int8",
            "num_beams": 1,
            "batch_size": 2,
            "device": "cpu",
        },
    )
    out = tmp_path / "transcripts.parquet"
    timing = transcribe_split(str(manifest), block, [], str(out), threads=2)
    transcripts = read_transcripts(out)
    assert list(transcripts.columns) == list(TRANSCRIPT_COLUMNS)
    assert transcripts["utt_id"].tolist() == ["en_00", "en_01"]
    assert transcripts["reference"].tolist() == ENGLISH
    scores = score_transcripts(transcripts["reference"].tolist(), transcripts["hypothesis"].tolist(), NormalizeConfig())
    assert scores["wer"] <= 0.15, transcripts["hypothesis"].tolist()
    metadata = json.loads(pq.read_schema(out).metadata[b"dfat"])
    assert metadata["backend"] == "ct2" and metadata["dtype"] == "int8" and timing["utterances"] == 2
