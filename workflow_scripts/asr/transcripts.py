"""The transcripts contract between ASR and its readers (score_asr, TEFE).

``results/systems/<system>/transcripts/<split>.parquet``: columns ``utt_id`` (unique), ``hypothesis`` (raw
model output) and ``reference`` (manifest text), in manifest order; schema metadata ``dfat``
(JSON) names the model, backend, settings and timing. Light on purpose (no torch, no
backend): a reader of transcripts does not rerun when an ASR backend changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workflow_scripts.common.features import METADATA_KEY
from workflow_scripts.common.files import atomic_path

TRANSCRIPT_COLUMNS = ["utt_id", "hypothesis", "reference"]


def _lacking(frame: pd.DataFrame) -> list[str]:
    return [column for column in TRANSCRIPT_COLUMNS if column not in frame.columns]


def write_transcripts(path: str | os.PathLike, transcripts: pd.DataFrame, metadata: dict[str, Any]) -> None:
    """Parquet with the contract's columns and ``metadata`` as JSON, written atomically."""
    if _lacking(transcripts):
        raise ValueError(f"{path}: transcripts lack columns {_lacking(transcripts)}")
    table = pa.Table.from_pandas(transcripts.loc[:, TRANSCRIPT_COLUMNS], preserve_index=False)
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata, ensure_ascii=False).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_transcripts(path: str | os.PathLike) -> pd.DataFrame:
    """A transcript parquet, checking the contract's columns and unique utt_id."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: transcripts not found")
    frame = pd.read_parquet(path)
    if _lacking(frame):
        raise ValueError(f"{path}: transcripts lack columns {_lacking(frame)} (has {list(frame.columns)})")
    repeated = frame["utt_id"].loc[frame["utt_id"].duplicated()]
    if len(repeated):
        raise ValueError(f"{path}: duplicate utt_id values {repeated.tolist()[:5]}")
    return frame
