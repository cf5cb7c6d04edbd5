"""Manifests: one table per corpus and split, keyed by utterance id (the contract in DESIGN.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from workflow_scripts.common.files import atomic_path

SPEECH_COLUMNS = ["utt_id", "audio_path", "duration_s", "sample_rate", "text", "label", "split", "speaker"]
TEXT_COLUMNS = ["utt_id", "text", "label", "split"]

_DTYPES = {
    "utt_id": str,
    "audio_path": str,
    "text": str,
    "label": str,
    "split": str,
    "speaker": str,
    "duration_s": float,
    "sample_rate": int,
}


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a TSV, CSV or parquet table with every column as text (parquet keeps its types).

    TSV is read without quoting, as the corpora in ../shared/data are written.
    """
    suffix = Path(path).suffix.lower()
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: table not found")
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in {".tsv", ".txt"}:
        return pd.read_csv(path, sep="\t", quoting=3, dtype=str, keep_default_na=False)
    if suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    raise ValueError(f"{path}: unsupported table format {suffix!r} (expected .tsv, .csv or .parquet)")


def write_manifest(frame: pd.DataFrame, path: str | os.PathLike, columns: list[str]) -> None:
    """Write ``frame``'s ``columns`` as a TSV manifest, atomically."""
    with atomic_path(path) as tmp:
        frame.loc[:, columns].to_csv(tmp, sep="\t", index=False, quoting=3)


def read_manifest(path: str | os.PathLike, columns: list[str] = SPEECH_COLUMNS) -> pd.DataFrame:
    """Read a manifest written by :func:`write_manifest`, checking columns and unique ids."""
    frame = pd.read_csv(path, sep="\t", quoting=3, dtype=str, keep_default_na=False)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: manifest lacks columns {missing} (has {list(frame.columns)})")
    duplicated = frame["utt_id"][frame["utt_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"{path}: duplicate utt_id values {duplicated[:5]}")
    for column in columns:
        if _DTYPES.get(column) in (float, int):
            frame[column] = frame[column].astype(_DTYPES[column])
    return frame
