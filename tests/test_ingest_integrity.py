"""Ingestion integrity: duplicate audio and sentences across splits, safe utt_ids, clips too short,
and nothing written outside the output directory whatever a table's ids say."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from workflow_scripts.challenge.augment import augment_manifest
from workflow_scripts.common.audio import AudioError, check_audio
from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.manifest import AUDIO_SHA256, SPEECH_COLUMNS, unsafe_utt_id, utt_file
from workflow_scripts.data.ingest import IngestionError
from workflow_scripts.data.ingest_speech import build_speech_manifest
from workflow_scripts.data.ingest_text import build_text_manifest

from conftest import write_tone

CLASSES = ["neutral", "negative"]
SPLITS = ["train", "dev", "test"]
LABEL_MAP = {"neu": "neutral", "ang": "negative"}
ESCAPING_IDS = ["../../../../ESCAPED", "sub/dir"]


def _rows(tmp_path: Path, n: int = 6) -> list[dict]:
    """Distinct tones, two per split, both classes in each split."""
    rows = []
    for i in range(n):
        write_tone(tmp_path / "wav" / f"u{i}.wav", seconds=0.4, frequency=200 + 25 * i)
        rows.append(
            {"id": f"u{i}", "wav": f"wav/u{i}.wav", "text": f"câu {i}", "emotion": ["neu", "ang"][i % 2]}
            | {"spk": f"s{i}", "part": SPLITS[(i // 2) % 3]}
        )
    return rows


def _speech(tmp_path: Path, rows: list[dict], **extra) -> dict:
    table = tmp_path / "corpus.tsv"
    pd.DataFrame(rows).to_csv(table, sep="\t", index=False)
    columns = {"utt_id": "id", "audio_path": "wav", "text": "text", "label": "emotion", "speaker": "spk"}
    block = {"table": str(table), "columns": columns | {"split": "part"}, "label_map": LABEL_MAP}
    return block_defaults("corpora.test", {**block, "split": {"policy": "table"}, **extra})


def test_manifest_records_each_files_sha256(tmp_path):
    manifest, _, _ = build_speech_manifest(_speech(tmp_path, _rows(tmp_path)), CLASSES, SPLITS, seed=0)
    for row in manifest.itertuples():
        assert getattr(row, AUDIO_SHA256) == hashlib.sha256(Path(row.audio_path).read_bytes()).hexdigest()


def test_same_audio_in_two_splits_is_an_error_naming_both_rows(tmp_path):
    rows = _rows(tmp_path)
    rows[4]["wav"] = rows[0]["wav"]  # u4 (dev... test) is u0's file (train) under another id
    rows[4]["part"] = "test"
    with pytest.raises(IngestionError) as error:
        build_speech_manifest(_speech(tmp_path, rows), CLASSES, SPLITS, seed=0, corpus="emo")
    message = str(error.value)
    assert "corpus emo" in message and "two splits" in message
    assert "data row 1 (utt_id 'u0'" in message and "data row 5 (utt_id 'u4'" in message
    assert message.count(str(tmp_path / "wav" / "u0.wav")) == 2


def test_same_audio_within_one_split_is_a_warning_with_the_count(tmp_path):
    rows = _rows(tmp_path)
    rows.append(dict(rows[0], id="u0_again"))  # same file, same split (train)
    _, _, summary = build_speech_manifest(_speech(tmp_path, rows), CLASSES, SPLITS, seed=0, corpus="emo")
    (warning,) = [w for w in summary["warnings"] if "SHA-256" in w]
    assert warning.startswith("corpus emo: 1 row(s) repeat the audio") and "'u0_again'" in warning


def test_same_normalised_sentence_in_text_training_and_test_is_a_warning_with_the_count(tmp_path):
    texts = ["Xin chào bạn", "tôi rất vui", "trời mưa", "buồn quá", "  xin   CHÀO bạn ", "một câu khác"]
    rows = [{"text": t, "emotion": ["neu", "ang"][i % 2], "part": SPLITS[i // 2]} for i, t in enumerate(texts)]
    table = tmp_path / "text.tsv"
    pd.DataFrame(rows).to_csv(table, sep="\t", index=False)
    spec = block_defaults(
        "text_corpus",
        {"table": str(table), "columns": {"text": "text", "label": "emotion", "split": "part"}}
        | {"label_map": LABEL_MAP, "split": {"policy": "table"}},
    )
    _, _, summary = build_text_manifest(spec, CLASSES, SPLITS, seed=0)
    assert summary["warnings"] == [
        "corpus text_corpus: 1 row(s) of split test have the same normalised sentence as a row of the training "
        "split train (scores on test partly measure memorised sentences)"
    ]


@pytest.mark.parametrize("utt_id", [*ESCAPING_IDS, ".hidden", "a b", "/abs", "x" * 201])
def test_unsafe_utt_id_is_an_error_naming_the_row(tmp_path, utt_id):
    rows = _rows(tmp_path)
    rows[2]["id"] = utt_id
    with pytest.raises(IngestionError) as error:
        build_speech_manifest(_speech(tmp_path, rows), CLASSES, SPLITS, seed=0)
    assert f"corpus.tsv, data row 3 (utt_id {utt_id!r})" in str(error.value)
    assert "utt_id" in str(error.value).split("):", 1)[1]


def test_safe_ids_pass():
    assert unsafe_utt_id("Ab-09_x.y~aug1") is None and unsafe_utt_id("x" * 200) is None


@pytest.mark.parametrize("utt_id", ESCAPING_IDS)
def test_augmentation_writes_nothing_outside_its_directory(tmp_path, utt_id):
    """A manifest edited by hand past ingestion: the id is refused before any file is written."""
    wav = write_tone(tmp_path / "in.wav", seconds=0.3)
    row = {"utt_id": utt_id, "audio_path": str(wav), "duration_s": 0.3, "sample_rate": 16000}
    frame = pd.DataFrame([row | {"text": "a", "label": "neutral", "split": "train", "speaker": "s"}])
    out = tmp_path / "a" / "b" / "c" / "d" / "wav"
    out.mkdir(parents=True)
    block = block_defaults("challenge.augmentation", {"copies": 1, "seed": 0})
    block["classes"] = {"neutral": block_defaults("challenge.augmentation.classes.neutral", {})}
    with pytest.raises(ValueError, match="unsafe utt_id"):
        augment_manifest(frame[SPEECH_COLUMNS], block, "train", out, "hand.tsv")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["in.wav"]
    with pytest.raises(ValueError, match="unsafe utt_id"):
        utt_file(out, utt_id, ".wav")


def test_clip_shorter_than_the_minimum_is_a_rejected_row(tmp_path):
    rows = _rows(tmp_path)
    write_tone(tmp_path / "wav" / "u3.wav", seconds=0.01)
    with pytest.raises(IngestionError, match=r"data row 4 \(utt_id 'u3'\): .*clip of 0.010 s is shorter than"):
        build_speech_manifest(_speech(tmp_path, rows), CLASSES, SPLITS, seed=0)
    _, skipped, _ = build_speech_manifest(_speech(tmp_path, rows, on_invalid="skip"), CLASSES, SPLITS, seed=0)
    assert skipped["utt_id"].tolist() == ["u3"]
    manifest, _, _ = build_speech_manifest(_speech(tmp_path, rows, min_duration_s=0.0), CLASSES, SPLITS, seed=0)
    assert "u3" in manifest["utt_id"].tolist()
    with pytest.raises(AudioError, match="u3.wav: clip of 0.010 s"):
        check_audio(tmp_path / "wav" / "u3.wav", 0.0, 0.1)


def test_too_few_speakers_names_the_corpus(tmp_path):
    rows = [dict(r, spk="s0") for r in _rows(tmp_path)]
    spec = _speech(tmp_path, rows, split={"policy": "stratified", "fractions": {s: 1.0 for s in SPLITS}})
    with pytest.raises(IngestionError, match=r"corpus emo \(.*corpus.tsv\): speaker-disjoint split needs at least 3"):
        build_speech_manifest(spec, CLASSES, SPLITS, seed=0, corpus="emo")


def test_relative_audio_paths_resolve_against_the_tables_directory_and_absolute_ones_stay(tmp_path):
    """README's path rules: ``../`` resolved relative to the table (no audio_root), absolute paths as they are."""
    rows = _rows(tmp_path)
    (tmp_path / "tables").mkdir()
    rows[0]["wav"] = "../wav/u0.wav"
    rows[1]["wav"] = str(tmp_path / "wav" / "u1.wav")
    for row in rows[2:]:
        row["wav"] = f"../{row['wav']}"
    table = tmp_path / "tables" / "corpus.tsv"
    pd.DataFrame(rows).to_csv(table, sep="\t", index=False)
    spec = _speech(tmp_path, rows)
    spec["table"] = str(table)
    manifest, _, _ = build_speech_manifest(spec, CLASSES, SPLITS, seed=0)
    paths = dict(zip(manifest["utt_id"], manifest["audio_path"], strict=True))
    assert paths["u0"] == str(tmp_path / "wav" / "u0.wav") and paths["u1"] == str(tmp_path / "wav" / "u1.wav")
