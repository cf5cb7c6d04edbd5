"""The transcripts contract, the score_asr rule's entry point, and what the scorer's rule depends on."""

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from workflow_scripts.asr.score import main as score_asr
from workflow_scripts.asr.transcripts import TRANSCRIPT_COLUMNS, read_transcripts, write_transcripts
from workflow_scripts.common.code_inputs import code_inputs

from rule_job import rule_job

ROOT = Path(__file__).resolve().parents[1]
NORMALIZE = {"lowercase": True, "remove_punctuation": True, "numbers_to_words": True, "abbreviations": {}}


def test_contract_round_trip_keeps_order_and_metadata(tmp_path):
    frame = pd.DataFrame(
        {
            "reference": ["Tôi có 2 con mèo.", "b"],
            "hypothesis": ["tôi có hai con mèo", "c"],
            "utt_id": ["u2", "u1"],
            "extra": [1, 2],
        }
    )
    write_transcripts(tmp_path / "t.parquet", frame, {"model": "m", "note": "ừ"})
    back = read_transcripts(tmp_path / "t.parquet")
    assert list(back.columns) == TRANSCRIPT_COLUMNS and back["utt_id"].tolist() == ["u2", "u1"]
    assert json.loads(pq.read_schema(tmp_path / "t.parquet").metadata[b"dfat"]) == {"model": "m", "note": "ừ"}


def test_contract_violations_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"lack columns \['hypothesis'\]"):
        write_transcripts(tmp_path / "t.parquet", pd.DataFrame({"utt_id": ["a"], "reference": ["x"]}), {})
    with pytest.raises(FileNotFoundError, match="transcripts not found"):
        read_transcripts(tmp_path / "missing.parquet")
    pd.DataFrame({"utt_id": ["a", "a"], "hypothesis": ["x", "y"], "reference": ["x", "y"]}).to_parquet(
        tmp_path / "d.parquet"
    )
    with pytest.raises(ValueError, match=r"d.parquet: duplicate utt_id values \['a'\]"):
        read_transcripts(tmp_path / "d.parquet")
    pd.DataFrame({"utt_id": ["a"], "text": ["x"]}).to_parquet(tmp_path / "c.parquet")
    with pytest.raises(ValueError, match=r"c.parquet: transcripts lack columns \['hypothesis', 'reference'\]"):
        read_transcripts(tmp_path / "c.parquet")


def test_score_rule_writes_wer_of_the_split(tmp_path):
    frame = pd.DataFrame(
        {
            "utt_id": ["u1", "u2"],
            "hypothesis": ["tôi có hai con mèo", "hôm nay"],
            "reference": ["Tôi có 2 con mèo.", "Hôm nay trời đẹp"],
        }
    )
    write_transcripts(tmp_path / "dev.parquet", frame, {})
    job = rule_job(
        input={"transcripts": str(tmp_path / "dev.parquet")},
        output={"scores": str(tmp_path / "wer.json")},
        params={"normalize": NORMALIZE},
        wildcards={"split": "dev"},
    )
    score_asr(job)
    scores = json.loads((tmp_path / "wer.json").read_text())
    assert scores["split"] == "dev" and scores["transcripts"] == str(tmp_path / "dev.parquet")
    assert scores["wer"] == pytest.approx(2 / 9) and scores["n_scored"] == 2


def test_readers_of_transcripts_do_not_depend_on_the_backends():
    """Editing an ASR backend reruns transcription, not scoring; editing inference does not retrain Whisper."""
    score = code_inputs("workflow_scripts/asr/score.py", ROOT)
    assert "workflow_scripts/asr/transcripts.py" in score
    assert not {"workflow_scripts/asr/backends.py", "workflow_scripts/asr/transcribe.py"} & set(score), score
    train = code_inputs("workflow_scripts/asr/train.py", ROOT)
    assert "workflow_scripts/asr/waveforms.py" in train and "workflow_scripts/asr/backends.py" not in train, train
    transcribe = code_inputs("workflow_scripts/asr/transcribe.py", ROOT)
    assert {"workflow_scripts/asr/backends.py", "workflow_scripts/asr/transcripts.py"} <= set(transcribe)
    for module in ("transcripts", "score", "text"):
        source = (ROOT / "workflow_scripts" / "asr" / f"{module}.py").read_text()
        assert "import torch" not in source and "backends" not in source.split('"""', 2)[-1], module
