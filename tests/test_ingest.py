"""Corpus ingestion: manifests from a table, and every bad-input case named by file, row and reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.manifest import read_manifest
from workflow_scripts.data.ingest import IngestionError
from workflow_scripts.data.ingest_speech import build_speech_manifest, main
from workflow_scripts.data.ingest_text import build_text_manifest

from conftest import write_tone
from rule_job import rule_job

CLASSES = ["neutral", "negative"]
SPLITS = ["train", "dev", "test"]
LABEL_MAP = {"neu": "neutral", "ang": "negative", "sad": "negative", "sur": None}


def _corpus(tmp_path: Path, rows: list[dict], **spec) -> dict:
    table = tmp_path / "corpus.tsv"
    pd.DataFrame(rows).to_csv(table, sep="\t", index=False)
    base = {
        "table": str(table),
        "columns": {
            "utt_id": "id",
            "audio_path": "wav",
            "text": "text",
            "label": "emotion",
            "speaker": "spk",
            "split": "part",
        },
        "label_map": LABEL_MAP,
        "split": {"policy": "table"},
        "require_text": True,
    }
    base.update(spec)
    return block_defaults("corpora.test", base)


def _good_rows(tmp_path: Path, n: int = 12) -> list[dict]:
    rows = []
    for i in range(n):
        write_tone(tmp_path / "wav" / f"u{i}.wav", seconds=0.5 + 0.1 * i, sample_rate=22050)
        rows.append(
            {
                "id": f"u{i}",
                "wav": f"wav/u{i}.wav",
                "text": f"câu số {i}",
                "emotion": ["neu", "ang"][i % 2],
                "spk": f"s{i % 3}",
                "part": SPLITS[i % 3],
            }
        )
    return rows


def test_manifest_from_table_has_the_contract_columns(tmp_path):
    rows = _good_rows(tmp_path)
    rows.append(
        {"id": "u99", "wav": "wav/u0.wav", "text": "ngạc nhiên", "emotion": "sur", "spk": "s0", "part": "train"}
    )
    manifest, skipped, summary = build_speech_manifest(_corpus(tmp_path, rows), CLASSES, SPLITS, seed=0)
    assert list(manifest.columns) == [
        "utt_id",
        "audio_path",
        "duration_s",
        "sample_rate",
        "text",
        "label",
        "split",
        "speaker",
        "audio_sha256",
    ]
    assert manifest["utt_id"].tolist() == [f"u{i}" for i in range(12)]
    assert manifest["duration_s"].tolist() == pytest.approx([0.5 + 0.1 * i for i in range(12)], abs=1e-4)
    assert set(manifest["sample_rate"]) == {22050}
    assert manifest.loc[manifest["utt_id"] == "u1", "label"].item() == "negative"
    assert Path(manifest["audio_path"][0]).exists()
    assert summary["excluded_by_label_map"] == 1  # "sur" -> null: excluded on purpose, and counted
    assert summary["counts"]["train"] == {"neutral": 2, "negative": 2}
    assert summary["total_hours"] == pytest.approx(sum(0.5 + 0.1 * i for i in range(12)) / 3600, abs=1e-4)
    assert skipped.empty


def _broken(tmp_path: Path, case: str) -> tuple[list[dict], str]:
    rows = _good_rows(tmp_path)
    target = rows[3]
    wav = tmp_path / target["wav"]
    if case == "missing-audio":
        wav.unlink()
        expected = "audio file not found"
    elif case == "unreadable-audio":
        wav.write_bytes(b"RIFF....not really a wave file")
        expected = "unreadable audio"
    elif case == "empty-audio":
        sf.write(wav, np.zeros((0,), np.float32), 16000)
        expected = "empty audio"
    elif case == "silent-audio":
        sf.write(wav, np.zeros(8000, np.float32), 16000)
        expected = "all-silent audio"
    elif case == "non-finite":
        samples = np.full(8000, 0.1, np.float32)
        samples[100] = np.nan
        sf.write(wav, samples, 16000, subtype="FLOAT")
        expected = "non-finite samples"
    elif case == "unknown-label":
        target["emotion"] = "joy"
        expected = "unknown label 'joy'"
    elif case == "duplicate-id":
        target["id"] = rows[1]["id"]
        expected = "duplicate utt_id 'u1'"
    elif case == "empty-text":
        target["text"] = ""
        expected = "empty text but require_text is true"
    else:
        raise AssertionError(case)
    return rows, expected


CASES = [
    "missing-audio",
    "unreadable-audio",
    "empty-audio",
    "silent-audio",
    "non-finite",
    "unknown-label",
    "duplicate-id",
    "empty-text",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_row_fails_naming_file_row_and_reason(tmp_path, case):
    rows, expected = _broken(tmp_path, case)
    with pytest.raises(IngestionError) as error:
        build_speech_manifest(_corpus(tmp_path, rows), CLASSES, SPLITS, seed=0)
    message = str(error.value)
    assert f"{tmp_path / 'corpus.tsv'}, data row 4" in message
    assert expected in message
    assert "1 invalid row(s)" in message


@pytest.mark.parametrize("case", CASES)
def test_skip_mode_writes_the_row_to_the_skip_list(tmp_path, case):
    rows, expected = _broken(tmp_path, case)
    manifest, skipped, summary = build_speech_manifest(
        _corpus(tmp_path, rows, on_invalid="skip"), CLASSES, SPLITS, seed=0
    )
    assert len(manifest) == 11 and summary["skipped"] == 1
    assert skipped["row"].tolist() == [4]
    assert expected in skipped["reason"].item()


def _speech_job(spec: dict, out_dir: Path):
    """The job of ingest_speech_corpus on ``spec`` (its split seed filled in, as the config validation does)."""
    spec = {**spec, "split": {**spec.get("split", {}), "seed": 0}}
    return rule_job(
        output={
            "manifests": [str(out_dir / f"{split}.tsv") for split in SPLITS],
            "skipped": str(out_dir / "skipped.tsv"),
            "summary": str(out_dir / "summary.json"),
        },
        params={"corpus": spec, "classes": CLASSES, "splits": SPLITS},
    )


def test_failed_ingestion_leaves_no_output(tmp_path):
    rows, _ = _broken(tmp_path, "unknown-label")
    out_dir = tmp_path / "out"
    with pytest.raises(IngestionError):
        main(_speech_job(_corpus(tmp_path, rows), out_dir))
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_missing_column_names_the_column_and_the_config_key(tmp_path):
    spec = _corpus(tmp_path, _good_rows(tmp_path))
    spec["columns"]["speaker"] = "talker"
    with pytest.raises(IngestionError, match=r"no column 'talker' \(configured as columns.speaker\)"):
        build_speech_manifest(spec, CLASSES, SPLITS, seed=0)


def test_split_values_outside_the_configured_splits_are_rejected_or_renamed(tmp_path):
    rows = _good_rows(tmp_path)
    for row in rows:
        row["part"] = {"dev": "valid"}.get(row["part"], row["part"])
    with pytest.raises(IngestionError, match=r"split values \['valid'\] are not among the configured splits"):
        build_speech_manifest(_corpus(tmp_path, rows), CLASSES, SPLITS, seed=0)
    spec = _corpus(tmp_path, rows, split={"policy": "table", "rename": {"valid": "dev"}})
    manifest, _, _ = build_speech_manifest(spec, CLASSES, SPLITS, seed=0)
    assert sorted(manifest["split"].unique()) == sorted(SPLITS)


def test_written_manifests_round_trip(tmp_path):
    main(_speech_job(_corpus(tmp_path, _good_rows(tmp_path)), tmp_path / "out"))
    train = read_manifest(tmp_path / "out" / "train.tsv")
    assert train["utt_id"].tolist() == ["u0", "u3", "u6", "u9"]
    assert train["duration_s"].dtype == float
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["utterances"] == 12
    assert read_manifest(tmp_path / "out" / "skipped.tsv", ["source", "row", "utt_id", "reason"]).empty


def test_text_corpus_from_per_split_tables_and_its_errors(tmp_path):
    train = tmp_path / "train.tsv"
    valid = tmp_path / "valid.tsv"
    pd.DataFrame({"sentence": ["tôi vui", "tôi buồn", "ok"], "emotion": ["neu", "sad", "sur"]}).to_csv(
        train, sep="\t", index=False
    )
    pd.DataFrame({"sentence": ["giận quá", ""], "emotion": ["ang", "neu"]}).to_csv(valid, sep="\t", index=False)
    test = tmp_path / "test.tsv"
    pd.DataFrame({"sentence": ["bình thường"], "emotion": ["neu"]}).to_csv(test, sep="\t", index=False)
    spec = block_defaults(
        "text_corpus",
        {
            "table": {"train": str(train), "dev": str(valid), "test": str(test)},
            "columns": {"text": "sentence", "label": "emotion"},
            "label_map": LABEL_MAP,
        },
    )
    with pytest.raises(IngestionError, match=rf"{valid}, data row 2 .*empty text"):
        build_text_manifest(spec, CLASSES, SPLITS, seed=0)
    spec["on_invalid"] = "skip"
    manifest, skipped, summary = build_text_manifest(spec, CLASSES, SPLITS, seed=0)
    assert manifest["text"].tolist() == ["tôi vui", "tôi buồn", "giận quá", "bình thường"]
    assert manifest["split"].tolist() == ["train", "train", "dev", "test"]
    assert manifest["utt_id"].is_unique
    assert summary["excluded_by_label_map"] == 1 and len(skipped) == 1


def test_text_entry_point_writes_each_split_and_seeds_from_the_block(tmp_path):
    from workflow_scripts.data.ingest_text import main as text_main

    table = tmp_path / "text.tsv"
    pd.DataFrame({"sentence": [f"câu {i}" for i in range(40)], "emotion": ["neu", "ang"] * 20}).to_csv(
        table, sep="\t", index=False
    )
    spec = block_defaults(
        "text_corpus",
        {
            "table": str(table),
            "columns": {"text": "sentence", "label": "emotion"},
            "label_map": LABEL_MAP,
            "split": {"policy": "stratified", "fractions": {"train": 0.6, "dev": 0.2, "test": 0.2}, "seed": 3},
        },
    )
    out_dir = tmp_path / "out"
    text_main(
        rule_job(
            output={
                "manifests": [str(out_dir / f"{split}.tsv") for split in SPLITS],
                "skipped": str(out_dir / "skipped.tsv"),
                "summary": str(out_dir / "summary.json"),
            },
            params={"corpus": spec, "classes": CLASSES, "splits": SPLITS},
        )
    )
    expected, _, _ = build_text_manifest(spec, CLASSES, SPLITS, seed=3)
    for split in SPLITS:
        written = read_manifest(out_dir / f"{split}.tsv", ["utt_id", "text", "label", "split"])
        assert written["utt_id"].tolist() == expected.loc[expected["split"] == split, "utt_id"].tolist()
    assert json.loads((out_dir / "summary.json").read_text())["utterances"] == 40
    other, _, _ = build_text_manifest(spec, CLASSES, SPLITS, seed=4)
    assert not other["split"].equals(expected["split"])  # the block's seed is the one that counts
