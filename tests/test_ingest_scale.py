"""Ingestion at scale: the header-only audio check and the on-screen progress bar."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.data.ingest import IngestionError
from workflow_scripts.data.ingest_speech import build_speech_manifest

from conftest import write_tone

CLASSES = ["neutral", "negative"]
SPLITS = ["train", "dev", "test"]


def _corpus(tmp_path: Path, n: int = 6, **spec) -> dict:
    """A table of ``n`` tones (22,050 Hz) with table splits, as a validated corpus block."""
    rows = []
    for i in range(n):
        write_tone(tmp_path / "wav" / f"u{i}.wav", seconds=0.5 + 0.1 * i, sample_rate=22050)
        rows.append({"id": f"u{i}", "wav": f"wav/u{i}.wav", "emotion": ["neu", "ang"][i % 2], "part": SPLITS[i % 3]})
    table = tmp_path / "corpus.tsv"
    pd.DataFrame(rows).to_csv(table, sep="\t", index=False)
    base = {
        "table": str(table),
        "columns": {"utt_id": "id", "audio_path": "wav", "label": "emotion", "split": "part"},
        "label_map": {"neu": "neutral", "ang": "negative"},
        "split": {"policy": "table"},
    }
    return block_defaults("corpora.test", {**base, **spec})


def test_header_check_gives_the_full_checks_manifest(tmp_path):
    full, _, _ = build_speech_manifest(_corpus(tmp_path), CLASSES, SPLITS, seed=0)
    header, _, _ = build_speech_manifest(_corpus(tmp_path, audio_check="header"), CLASSES, SPLITS, seed=0)
    pd.testing.assert_frame_equal(header, full)


def test_header_check_rejects_a_non_audio_file_naming_it(tmp_path):
    spec = _corpus(tmp_path, audio_check="header")
    (tmp_path / "wav" / "u4.wav").write_text("not audio at all", encoding="utf-8")
    with pytest.raises(IngestionError, match=r"u4\.wav: unreadable audio"):
        build_speech_manifest(spec, CLASSES, SPLITS, seed=0)
    manifest, skipped, _ = build_speech_manifest({**spec, "on_invalid": "skip"}, CLASSES, SPLITS, seed=0)
    assert skipped["utt_id"].tolist() == ["u4"] and "u4" not in manifest["utt_id"].tolist()


def test_header_check_reads_no_samples_so_silence_passes(tmp_path):
    spec = _corpus(tmp_path)
    sf.write(tmp_path / "wav" / "u0.wav", np.zeros(8000, dtype=np.float32), 22050, subtype="PCM_16")
    with pytest.raises(IngestionError, match=r"u0\.wav: all-silent"):
        build_speech_manifest(spec, CLASSES, SPLITS, seed=0)
    manifest, _, _ = build_speech_manifest({**spec, "audio_check": "header"}, CLASSES, SPLITS, seed=0)
    assert "u0" in manifest["utt_id"].tolist()


@pytest.mark.parametrize("tty", [False, True])
def test_progress_bar_only_on_a_terminal(tmp_path, capsys, monkeypatch, tty):
    spec = _corpus(tmp_path)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    build_speech_manifest(spec, CLASSES, SPLITS, seed=0)
    shown = "audio check (full)" in capsys.readouterr().err
    assert shown == tty
