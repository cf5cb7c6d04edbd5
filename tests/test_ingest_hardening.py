"""Issue 18: bad input the README did not list fails cleanly (file, row or key, reason), or warns on
screen and in the summary where a run can go on; nothing silent, nothing raw. Fixtures are written here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pandas as pd
import pytest

from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.manifest import AudioItems, read_manifest, read_manifest_columns, write_manifest
from workflow_scripts.data.ingest_speech import build_speech_manifest
from workflow_scripts.data.ingest_speech import main as speech_main
from workflow_scripts.data.ingest_text import build_text_manifest

from conftest import PROJECT_ROOT, run_snakemake, write_tone
from rule_job import rule_job

CLASSES = ["neutral", "negative"]
SPLITS = ["train", "dev", "test"]
FRACTIONS = {"train": 0.6, "dev": 0.2, "test": 0.2}
LABEL_MAP = {"neu": "neutral", "ang": "negative"}
COLUMNS = {"utt_id": "id", "audio_path": "wav", "text": "text", "label": "emotion", "speaker": "spk"}


def _rows(tmp_path: Path, speakers: int = 8, per_speaker: int = 4) -> list[dict]:
    rows = []
    for s in range(speakers):
        for k in range(per_speaker):
            name = f"s{s}_{k}"
            # A distinct tone per file: equal audio in two splits is an error of its own.
            write_tone(tmp_path / "wav" / f"{name}.wav", seconds=0.3, frequency=200 + 10 * k + 3 * s)
            rows.append(
                {
                    "id": name,
                    "wav": f"wav/{name}.wav",
                    "text": f"câu {name}",
                    "emotion": ["neu", "ang"][k % 2],
                    "spk": f"s{s}",
                }
            )
    return rows


def _spec(table: Path, **extra) -> dict:
    """A speech corpus block (schema defaults filled in, as the config validation does)."""
    return block_defaults(
        "corpora.test",
        {
            "table": str(table),
            "columns": dict(COLUMNS),
            "label_map": LABEL_MAP,
            "split": {"policy": "stratified", "fractions": FRACTIONS, "speaker_disjoint": True},
            **extra,
        },
    )


def _tsv(tmp_path: Path, rows: list[dict], name: str = "corpus.tsv") -> Path:
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


# --- 1. a blank speaker cell under a speaker-disjoint split ---


def test_blank_speaker_fails_a_speaker_disjoint_split_naming_the_row(tmp_path):
    rows = _rows(tmp_path)
    rows[5]["spk"] = ""
    table = _tsv(tmp_path, rows)
    with pytest.raises(ValueError) as error:
        build_speech_manifest(_spec(table), CLASSES, SPLITS, seed=0)
    message = str(error.value)
    assert f"{table}, data row 6 (utt_id 's1_1')" in message
    assert "empty speaker cell" in message and "split.missing_speaker: own_speaker" in message


def test_blank_speaker_with_own_speaker_keeps_the_split_speaker_disjoint(tmp_path):
    rows = _rows(tmp_path)
    rows[5]["spk"] = ""
    spec = _spec(_tsv(tmp_path, rows))
    spec["split"]["missing_speaker"] = "own_speaker"
    manifest, _, summary = build_speech_manifest(spec, CLASSES, SPLITS, seed=0)
    assert manifest.loc[manifest["utt_id"] == "s1_1", "speaker"].item() == "unknown_speaker:s1_1"
    assert (manifest.groupby("speaker")["split"].nunique() == 1).all()  # no speaker in two splits
    assert summary["speaker_disjoint"] is True and summary["rows_without_speaker"] == 1
    assert summary["speakers_per_split"] is not None


# --- 2. parquet nulls ---


def test_parquet_null_transcript_and_null_audio_path_are_named_rows(tmp_path):
    rows = _rows(tmp_path, speakers=3)
    frame = pd.DataFrame(rows)
    frame.loc[2, "text"] = None
    frame.loc[4, "wav"] = None
    table = tmp_path / "corpus.parquet"
    frame.to_parquet(table)
    with pytest.raises(ValueError) as error:
        build_speech_manifest(_spec(table, require_text=True), CLASSES, SPLITS, seed=0)
    message = str(error.value)
    assert f"{table}, data row 3 (utt_id 's0_2'): empty text but require_text is true" in message
    assert f"{table}, data row 5 (utt_id 's1_0'): empty audio_path cell" in message


# --- 3. text that the manifest writer could not write; tables that cannot be parsed ---


def test_csv_with_tabs_newlines_and_quotes_round_trips_through_the_manifests(tmp_path):
    rows = _rows(tmp_path, speakers=3)
    texts = ['anh ấy nói "thôi"\tđi', "dòng một\ndòng hai", "tiếng Việt có dấu: ạ ả ã", "a\r\nb", '"'] * 3
    for row, text in zip(rows, texts):
        row["text"] = text
    table = tmp_path / "corpus.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    out = tmp_path / "out"
    spec = _spec(table, split={"policy": "stratified", "fractions": FRACTIONS, "seed": 0})
    speech_main(
        rule_job(
            output={
                "manifests": [str(out / f"{s}.tsv") for s in SPLITS],
                "skipped": str(out / "skipped.tsv"),
                "summary": str(out / "summary.json"),
            },
            params={"corpus": spec, "classes": CLASSES, "splits": SPLITS},
        )
    )
    written = pd.concat([read_manifest(out / f"{s}.tsv") for s in SPLITS]).set_index("utt_id")
    for row in rows:
        assert written.at[row["id"], "text"] == row["text"], row["id"]


def test_write_manifest_round_trips_any_text_and_leaves_plain_text_unquoted(tmp_path):
    texts = ["tab\there", "new\nline", 'quote " inside', '"fully quoted"', "Tiếng Việt", "", "cr\rhere", "  spaces  "]
    frame = pd.DataFrame({"utt_id": [f"u{i}" for i in range(len(texts))], "text": texts, "label": "x", "split": "t"})
    path = tmp_path / "m.tsv"
    write_manifest(frame, path, ["utt_id", "text", "label", "split"])
    assert read_manifest(path, ["utt_id", "text", "label", "split"])["text"].tolist() == texts
    streamed = read_manifest_columns(path, ["text", "utt_id"])  # the Arrow reader of the streaming steps
    assert streamed.column_names == ["text", "utt_id"] and streamed.column("text").to_pylist() == texts
    plain = frame.iloc[[4, 7]]
    write_manifest(plain, path, ["utt_id", "text", "label", "split"])
    assert (
        path.read_text(encoding="utf-8") == "utt_id\ttext\tlabel\tsplit\nu4\tTiếng Việt\tx\tt\nu7\t  spaces  \tx\tt\n"
    )


def test_tsv_with_a_tab_inside_a_field_names_the_file_and_line(tmp_path):
    rows = _rows(tmp_path, speakers=3)
    table = _tsv(tmp_path, rows)
    lines = table.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace("câu", "câu\tthêm", 1)
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as error:
        build_speech_manifest(_spec(table), CLASSES, SPLITS, seed=0)
    message = str(error.value)
    assert str(table) in message and "line 4" in message and "tab inside a field" in message


def test_non_utf8_byte_names_the_file_and_line(tmp_path):
    table = _tsv(tmp_path, _rows(tmp_path, speakers=3))
    raw = table.read_bytes().split(b"\n")
    raw[2] = raw[2].replace("câu".encode(), b"c\xe2u", 1)  # Latin-1 byte inside UTF-8 text
    table.write_bytes(b"\n".join(raw))
    with pytest.raises(ValueError) as error:
        build_speech_manifest(_spec(table), CLASSES, SPLITS, seed=0)
    message = str(error.value)
    assert f"{table}, line 3" in message and "not UTF-8" in message


# --- 4. degenerate corpora ---


def test_skip_mode_with_every_row_bad_is_an_error(tmp_path):
    rows = _rows(tmp_path, speakers=3)
    for row in rows:
        row["emotion"] = "joy"
    with pytest.raises(ValueError, match=r"no usable utterance: 12 of 12 row\(s\) invalid"):
        build_speech_manifest(_spec(_tsv(tmp_path, rows), on_invalid="skip"), CLASSES, SPLITS, seed=0)


@pytest.mark.parametrize("audio_root", [None, "wav"])
def test_header_only_table_is_an_error_naming_the_file(tmp_path, audio_root):
    table = tmp_path / "corpus.tsv"
    table.write_text("id\twav\ttext\temotion\tspk\n", encoding="utf-8")
    spec = _spec(table, audio_root=str(tmp_path / audio_root) if audio_root else None)
    with pytest.raises(ValueError, match=rf"{table}: no data rows"):
        build_speech_manifest(spec, CLASSES, SPLITS, seed=0)


def test_empty_split_is_an_error_for_the_emotion_corpus_and_a_warning_otherwise(tmp_path):
    rows = _rows(tmp_path, speakers=3)
    for i, row in enumerate(rows):
        row["part"] = ["train", "dev"][i % 2 * (i > 3)]
    spec = _spec(_tsv(tmp_path, rows), split={"policy": "table"})
    spec["columns"]["split"] = "part"
    with pytest.raises(ValueError, match=r"corpus speech: split\(s\) \['test'\] have no utterances"):
        build_speech_manifest(spec, CLASSES, SPLITS, seed=0)
    _, _, summary = build_speech_manifest(spec, CLASSES, SPLITS, seed=0, strict=False, corpus="asr_only")
    assert summary["warnings"][0].startswith("corpus asr_only: split(s) ['test'] have no utterances")


def test_class_missing_from_train_is_an_error_and_from_a_test_split_a_warning(tmp_path):
    rows = _rows(tmp_path, speakers=3)
    for i, row in enumerate(rows):
        row["part"] = ["train", "dev", "test"][i % 3]
        if row["part"] == "test":
            row["emotion"] = "neu"
    spec = _spec(_tsv(tmp_path, rows), split={"policy": "table"})
    spec["columns"]["split"] = "part"
    _, _, summary = build_speech_manifest(spec, CLASSES, SPLITS, seed=0)
    assert summary["warnings"] == ["corpus speech: split test has no utterance of class(es) ['negative']"]
    for row in rows:
        if row["part"] == "train":
            row["emotion"] = "ang"
    spec["table"] = str(_tsv(tmp_path, rows))
    with pytest.raises(ValueError, match=r"split train has no utterance of class\(es\) \['neutral'\]"):
        build_speech_manifest(spec, CLASSES, SPLITS, seed=0)


def test_warnings_reach_the_screen_under_a_rule(tmp_path):
    """Inside a rule stderr goes to the log file; a warning is printed on the terminal as well."""
    rows = _rows(tmp_path, speakers=3)
    for i, row in enumerate(rows):
        row["part"] = ["train", "dev", "test"][i % 3]
        row["emotion"] = "neu" if row["part"] == "test" else row["emotion"]
    pd.DataFrame(rows).to_csv(tmp_path / "corpus.tsv", sep="\t", index=False)
    script = f"""
import sys
sys.path.insert(0, {str(PROJECT_ROOT / "tests")!r})
from rule_job import rule_job
from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.data.ingest_speech import main
out = {str(tmp_path / "out")!r}
spec = block_defaults("corpora.test", {{"table": {str(tmp_path / "corpus.tsv")!r},
        "columns": {dict(COLUMNS, split="part")!r}, "label_map": {LABEL_MAP!r},
        "split": {{"policy": "table", "seed": 0}}}})
snakemake = rule_job(
    output={{"manifests": [out + "/" + s + ".tsv" for s in {SPLITS!r}], "skipped": out + "/skipped.tsv",
            "summary": out + "/summary.json"}},
    params={{"corpus": spec, "classes": {CLASSES!r}, "splits": {SPLITS!r}}},
    log=[{str(tmp_path / "rule.log")!r}],
)
run_rule(main)
"""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "WARNING: corpus speech: split test has no utterance of class(es) ['negative']" in result.stderr
    assert "no utterance of class" in (tmp_path / "rule.log").read_text()
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["warnings"]


# --- 6. smaller cases ---


def test_truncated_wav_is_rejected_with_both_frame_counts(tmp_path):
    rows = _rows(tmp_path, speakers=3)
    wav = tmp_path / rows[2]["wav"]
    data = wav.read_bytes()
    wav.write_bytes(data[: 44 + (len(data) - 44) // 2])
    with pytest.raises(ValueError) as error:
        build_speech_manifest(_spec(_tsv(tmp_path, rows)), CLASSES, SPLITS, seed=0)
    message = str(error.value)
    assert (
        "data row 3" in message
        and "truncated WAV file: the header declares 4800 frames, the file holds 2400" in message
    )


def test_file_name_in_another_unicode_form_is_found(tmp_path):
    rows = _rows(tmp_path, speakers=3)
    name = "câu_ạ.wav"
    nfd_dir = tmp_path / unicodedata.normalize("NFD", "thư_mục")
    write_tone(nfd_dir / unicodedata.normalize("NFD", name), seconds=0.4)
    rows[0]["wav"] = unicodedata.normalize("NFC", f"thư_mục/{name}")  # the table spells it composed
    manifest, _, _ = build_speech_manifest(_spec(_tsv(tmp_path, rows)), CLASSES, SPLITS, seed=0)
    found = manifest.loc[manifest["utt_id"] == "s0_0", "audio_path"].item()
    assert os.path.exists(found) and manifest.loc[manifest["utt_id"] == "s0_0", "duration_s"].item() == 0.4


def test_missing_column_lists_only_the_files_own_columns(tmp_path):
    rows = _rows(tmp_path, speakers=3)
    spec = _spec(_tsv(tmp_path, rows))
    spec["columns"]["text"] = "transcript"
    with pytest.raises(ValueError) as error:
        build_speech_manifest(spec, CLASSES, SPLITS, seed=0)
    assert str(error.value).endswith("the file's columns are ['id', 'wav', 'text', 'emotion', 'spk']")


def test_a_column_missing_from_one_per_split_file_is_named_not_read_as_nan(tmp_path):
    train, dev, test = (tmp_path / f"{s}.tsv" for s in SPLITS)
    pd.DataFrame({"sentence": ["a", "b"], "emotion": ["neu", "ang"]}).to_csv(train, sep="\t", index=False)
    pd.DataFrame({"text": ["c", "d"], "emotion": ["neu", "ang"]}).to_csv(dev, sep="\t", index=False)
    pd.DataFrame({"sentence": ["e"], "emotion": ["neu"]}).to_csv(test, sep="\t", index=False)
    spec = block_defaults(
        "text_corpus",
        {
            "table": {"train": str(train), "dev": str(dev), "test": str(test)},
            "columns": {"text": "sentence", "label": "emotion"},
            "label_map": LABEL_MAP,
        },
    )
    with pytest.raises(
        ValueError, match=rf"{dev}: no column 'sentence' .* the file's columns are \['text', 'emotion'\]"
    ):
        build_text_manifest(spec, CLASSES, SPLITS, seed=0)


def test_fractions_not_naming_the_splits_fail_a_dry_run(workflow_dir):
    overlay = workflow_dir / "overlay.yaml"
    overlay.write_text(
        "corpora:\n  mine:\n    table: mine.tsv\n    columns: {audio_path: wav, label: emotion}\n"
        "    label_map: {neu: neutral}\n    split: {policy: stratified, fractions: {train: 0.8, valid: 0.2}}\n",
        encoding="utf-8",
    )
    result = run_snakemake(workflow_dir, "-n", "--configfile", str(overlay), check=False, cores=1, timeout=300)
    assert result.returncode != 0
    assert "invalid config at 'corpora.mine.split.fractions': keys ['train', 'valid'] must be the splits" in (
        result.stdout + result.stderr
    )


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    from workflow_scripts.config import main as check_config

    bad = tmp_path / "mine.yaml"
    bad.write_text("seed: 1\ncorpora:\n  x: [1, 2\n  y: 3\n", encoding="utf-8")
    with pytest.raises(SystemExit) as error:
        check_config([str(bad)])
    assert str(error.value).startswith(f"{bad}: not valid YAML at line 4, column 4: expected ',' or ']'")


def test_the_arrow_manifest_reader_checks_as_read_manifest_does(tmp_path):
    frame = pd.DataFrame(
        {"utt_id": ["a", "b", "a"], "audio_path": ["x.wav", "NA", "z.wav"], "duration_s": [0.5, 1.0, 2.25]}
    )
    path = tmp_path / "m.tsv"
    write_manifest(frame, path, list(frame.columns))
    with pytest.raises(ValueError, match=r"m.tsv: duplicate utt_id values \['a'\]"):
        read_manifest_columns(path, ["utt_id", "audio_path"])
    with pytest.raises(ValueError, match=r"m.tsv: manifest lacks columns \['speaker'\]"):
        read_manifest_columns(path, ["utt_id", "speaker"])
    write_manifest(frame.iloc[:2], path, list(frame.columns))
    table = read_manifest_columns(path, ["utt_id", "duration_s"])
    assert table.column("duration_s").to_pylist() == [0.5, 1.0]  # typed as read_manifest types it
    assert list(AudioItems(path)) == [("a", "x.wav"), ("b", "NA")] and len(AudioItems(path)) == 2  # "NA" is text
    path.write_text(path.read_text(encoding="utf-8") + "c\tc.wav\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"m.tsv, line 4: 2 fields, expected 3"):
        read_manifest_columns(path, ["utt_id"])
