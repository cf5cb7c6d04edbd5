"""ASR systems (asr.systems): which results exist per system, the oracle's transcripts, Table 3."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from workflow_scripts.asr.transcribe import transcribe_split
from workflow_scripts.asr.transcripts import read_transcripts
from workflow_scripts.common import names, paths
from workflow_scripts.config import validate_config
from workflow_scripts.fusion import rows
from workflow_scripts.fusion.table3 import table3_markdown, write_table3

from conftest import PROJECT_ROOT


def _fusion_block(ablations, vote_members):
    """The demo's validated fusion block with other head ablations and vote members."""
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    config["fusion"]["heads"] |= {"variants": ["xattn", "graph"], "ablations": ablations}
    config["fusion"]["vote"]["members"] = vote_members
    return validate_config(config, PROJECT_ROOT / "schemas" / "config.schema.yaml")["fusion"]


def test_text_dependent_rows_are_per_system_and_acoustic_only_ones_shared():
    speech_only = {"graph_speech_only": {"head": "graph", "nodes": ["speech", "prosody"]}}
    fusion = _fusion_block(speech_only, ["hybrid", "graph_speech_only"])
    assert not rows.reads_transcripts("acoustic", fusion) and not rows.reads_transcripts("acoustic_aug", fusion)
    assert all(rows.reads_transcripts(v, fusion) for v in ("text", "early", "late", "hybrid", "xattn", "graph", "vote"))
    assert not rows.reads_transcripts("graph_speech_only", fusion)
    # Every +rules row reads transcripts, even after an acoustic-only row.
    assert rows.reads_transcripts("acoustic+rules", fusion) and rows.reads_transcripts("hybrid+rules", fusion)
    with pytest.raises(ValueError, match="'nope' is not a row"):
        rows.reads_transcripts("nope", fusion)
    # The vote reads transcripts only through its members.
    assert not rows.reads_transcripts("vote", _fusion_block(speech_only, ["acoustic", "graph_speech_only"]))
    assert rows.row_scope("graph_speech_only", "ft", fusion) == paths.SHARED_SCOPE
    assert rows.row_scope("vote", "ft", fusion) == paths.system_scope("ft") == "systems/ft"
    assert [fs for fs in names.FEATURE_SETS if not names.feature_set_reads_transcripts(fs)] == [
        "acoustic",
        "acoustic_aug",
        "acoustic_egemaps",
    ]
    assert [rows.feature_set_scope(fs, "ft") for fs in ("acoustic", "early")] == ["shared", "systems/ft"]


def test_systems_inherit_the_transcribe_block_and_the_oracle_takes_nothing():
    asr = {
        "transcribe": {"model": "finetuned", "backend": "whisper", "batch_size": 32},
        "systems": [
            {"name": "ft"},
            {"name": "early", "model": "results/asr/snapshots/step-600"},
            {"name": "o", "backend": "oracle"},
        ],
        "primary_system": None,
    }
    systems = names.asr_systems(asr)
    assert systems["ft"] == asr["transcribe"]
    assert systems["early"] == {**asr["transcribe"], "model": "results/asr/snapshots/step-600"}
    assert systems["o"] == {"backend": "oracle"}
    assert names.primary_system(asr) == "ft" and names.primary_system({**asr, "primary_system": "o"}) == "o"
    with pytest.raises(ValueError, match="asr.primary_system: 'x' is not a name of asr.systems"):
        names.primary_system({**asr, "primary_system": "x"})
    with pytest.raises(ValueError, match="'ft' is listed twice"):
        names.asr_systems({**asr, "systems": [{"name": "ft"}, {"name": "ft"}]})


def test_oracle_transcripts_are_the_reference_text(tmp_path):
    manifest = tmp_path / "dev.tsv"
    pd.DataFrame(
        {
            "utt_id": ["b", "a"],
            "audio_path": ["missing_b.wav", "missing_a.wav"],  # the oracle reads no audio
            "duration_s": [1.0, 1.0],
            "sample_rate": [16000, 16000],
            "text": ["Tôi vui", "buồn quá"],
            "label": ["neutral", "negative"],
            "split": ["dev", "dev"],
            "speaker": ["s1", "s2"],
        }
    ).to_csv(manifest, sep="\t", index=False)
    out = tmp_path / "oracle.parquet"
    transcribe_split(str(manifest), {"backend": "oracle"}, [], str(out), threads=1)
    frame = read_transcripts(out)
    assert frame["utt_id"].tolist() == ["b", "a"] and frame["hypothesis"].tolist() == frame["reference"].tolist()
    assert frame["hypothesis"].tolist() == ["Tôi vui", "buồn quá"]


def _metrics(path, wa):
    split = {"WA": wa, "UA": wa, "WF1": wa, "ci": {m: [wa - 0.1, wa + 0.1] for m in ("WA", "UA", "WF1")}}
    document = {
        "variant": "hybrid",
        "title": "Hybrid fusion (DFAT)",
        "selected": "ensemble",
        "bootstrap": {"confidence": 0.95},
        "splits": {"public_test": split},
    }
    path.write_text(json.dumps(document))
    return str(path)


def test_table3_has_each_systems_wer_and_its_rows(tmp_path):
    runs = []
    for system, wer, wa in (("finetuned", 0.25, 0.8), ("oracle", 0.0, 0.9)):
        scores = tmp_path / f"wer_{system}.json"
        scores.write_text(json.dumps({"wer": wer, "cer": wer / 2}))
        runs.append(
            {
                "label": system,
                "wer": {"public_test": str(scores)},
                "metrics": {"hybrid": _metrics(tmp_path / f"{system}.json", wa)},
            }
        )
    write_table3(runs, ["public_test"], str(tmp_path / "t3.md"), str(tmp_path / "t3.csv"))
    table = pd.read_csv(tmp_path / "t3.csv")
    assert table["system"].tolist() == ["finetuned", "oracle"] and table["variant"].tolist() == ["hybrid"] * 2
    assert table["public_test_wer"].tolist() == [0.25, 0.0] and table["public_test_WA"].tolist() == [0.8, 0.9]
    markdown = (tmp_path / "t3.md").read_text()
    assert (
        "| finetuned | 25.00 | 12.50 |" in markdown and "| oracle | Hybrid fusion (DFAT) | ensemble | 90.00" in markdown
    )
    assert table3_markdown([], ["public_test"], 0.95).startswith("| ASR system")
