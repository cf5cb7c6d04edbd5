"""Manifests: one table per corpus and split, keyed by utterance id (the contract in DESIGN.md).

Manifests are TSV files with minimal quoting: a field holding a tab, a newline, a carriage
return or a double quote is written in double quotes (an inner quote doubled), every other
field as it is. Any text therefore round-trips through :func:`write_manifest` and
:func:`read_manifest`, and a manifest without such characters is the plain TSV it always was.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from workflow_scripts.common.files import atomic_path

SPEECH_COLUMNS = ["utt_id", "audio_path", "duration_s", "sample_rate", "text", "label", "split", "speaker"]
TEXT_COLUMNS = ["utt_id", "text", "label", "split"]
# The SHA-256 of each audio file's bytes, written by ingestion (and augmentation) after SPEECH_COLUMNS;
# readers need not ask for it (manifests written before it existed lack it).
AUDIO_SHA256 = "audio_sha256"
INGESTED_SPEECH_COLUMNS = [*SPEECH_COLUMNS, AUDIO_SHA256]

# utt_ids become file names (augmented copies, per-utterance files): RFC 3986's unreserved characters,
# not starting with a dot, so no id names a path separator, a parent directory or a hidden file.
UTT_ID_MAX_CHARS = 200
SAFE_UTT_ID = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")

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


def unsafe_utt_id(utt_id: str) -> str | None:
    """Why ``utt_id`` cannot be a file name (the reason), or None when it is safe."""
    if len(utt_id) > UTT_ID_MAX_CHARS:
        return f"utt_id of {len(utt_id)} characters (at most {UTT_ID_MAX_CHARS})"
    if not SAFE_UTT_ID.fullmatch(utt_id):
        return (
            f"unsafe utt_id {utt_id!r}: use ASCII letters, digits and . _ ~ - only (no path separator, "
            "no space), not starting with a dot"
        )
    return None


def utt_file(directory: str | os.PathLike, utt_id: str, suffix: str) -> Path:
    """The file ``<directory>/<utt_id><suffix>``: the one way an utt_id becomes a file name.

    Refuses an unsafe id (:func:`unsafe_utt_id`), so nothing lands outside ``directory``.
    """
    reason = unsafe_utt_id(utt_id)
    if reason:
        raise ValueError(f"{directory}: cannot write a file for {reason}")
    return Path(directory) / f"{utt_id}{suffix}"


class TableError(ValueError):
    """A table that cannot be read; the message names the file, the line and what to do."""


def _check_utf8(path: str | os.PathLike) -> None:
    raw = Path(path).read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise TableError(
            f"{path}, line {line} (file line, header = line 1): byte {raw[error.start : error.start + 1]!r} "
            f"is not UTF-8 ({error.reason}); save the table as UTF-8"
        ) from error


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a TSV, CSV or parquet table with every column as text (parquet keeps its types).

    TSV is read without quoting, as the corpora in ../shared/data are written: a tab inside a
    field is an error naming the file and line (use CSV, or parquet, for such text). Text
    tables must be UTF-8.
    """
    suffix = Path(path).suffix.lower()
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: table not found")
    if suffix == ".parquet":
        try:
            return pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for a broken file
            raise TableError(f"{path}: unreadable parquet file ({type(error).__name__}: {error})") from error
    if suffix not in {".tsv", ".txt", ".csv"}:
        raise TableError(f"{path}: unsupported table format {suffix!r} (expected .tsv, .csv or .parquet)")
    _check_utf8(path)
    if os.path.getsize(path) == 0 or not Path(path).read_text(encoding="utf-8").strip():
        raise TableError(f"{path}: empty file (no header, no data rows)")
    tsv = suffix in {".tsv", ".txt"}
    try:
        if tsv:
            return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.ParserError as error:
        hint = (
            "TSV tables are read unquoted, so a tab inside a field splits it: remove the tab, or "
            "write the table as CSV (quoted fields) or parquet"
            if tsv
            else "check the quoting of that row (a field holding a comma, quote or newline must be quoted)"
        )
        raise TableError(f"{path}: cannot parse the table ({str(error).strip()}); {hint}") from error


_NEEDS_QUOTES = re.compile(r'[\t\n\r"]')


def _tsv_field(text: str) -> str:
    # Written here, not by the csv module: Python 3.11's writer leaves a lone carriage return unquoted.
    return '"' + text.replace('"', '""') + '"' if _NEEDS_QUOTES.search(text) else text


def _column_text(column: pd.Series) -> list[str]:
    """A column's cells as pandas writes them to CSV (numbers in their shortest form, missing values empty)."""
    missing = column.isna().to_numpy()
    text = column.astype(str).tolist()
    return ["" if gone else value for value, gone in zip(text, missing, strict=True)]


def write_manifest(frame: pd.DataFrame, path: str | os.PathLike, columns: list[str]) -> None:
    """Write ``frame``'s ``columns`` as a TSV manifest (minimal quoting, see the module), atomically."""
    cells = [_column_text(frame[column]) for column in columns]
    lines = ["\t".join(_tsv_field(str(c)) for c in columns)]
    lines += ["\t".join(_tsv_field(value) for value in row) for row in zip(*cells)]
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))


def read_manifest(path: str | os.PathLike, columns: list[str] = SPEECH_COLUMNS) -> pd.DataFrame:
    """Read a manifest written by :func:`write_manifest`, checking columns and unique ids."""
    frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_MINIMAL, dtype=str, keep_default_na=False)
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


_ARROW_TYPES = {str: pa.string(), float: pa.float64(), int: pa.int64()}


def repeated_values(column: pa.ChunkedArray) -> list[Any]:
    """The values that occur more than once in an Arrow column (an utt_id column: must be none).

    A Python set, chunk by chunk: Arrow's hash kernels allocate from its own pool, which keeps
    what they free (about 5 MB at 64,000 ids, against a flat-memory goal: docs/scale.md)."""
    seen: set[Any] = set()
    repeated: dict[Any, None] = {}
    for chunk in column.chunks:
        for value in chunk.to_pylist():
            if value in seen:
                repeated[value] = None
            seen.add(value)
    return list(repeated)


def read_manifest_columns(path: str | os.PathLike, columns: list[str], rows_per_chunk: int = 4096) -> pa.Table:
    """Only ``columns`` of a manifest written by :func:`write_manifest`, as an Arrow table, with
    the checks of :func:`read_manifest` (columns present, unique ids) and the same values.

    For the steps that go through a split once (extraction, transcription): the file is parsed a
    line at a time (the csv module reads :func:`write_manifest`'s quoting) and ``rows_per_chunk``
    rows at a time become Arrow arrays, which hold a text column in one buffer, about its
    characters per row; a pandas frame of the whole manifest holds about 1 kB per row, and
    Arrow's own CSV reader keeps tens of MB of read-ahead blocks (docs/scale.md).
    """
    wanted = list(dict.fromkeys(["utt_id", *columns]))
    types = {c: _ARROW_TYPES[_DTYPES.get(c, str)] for c in wanted}
    chunks: dict[str, list[pa.Array]] = {c: [] for c in wanted}
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter="\t", quotechar='"', doublequote=True, strict=True)
        header = next(rows, [])
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{path}: manifest lacks columns {missing} (has {header})")
        positions = [header.index(c) for c in wanted]
        pending: list[list[str]] = []
        for row in rows:
            if not row:  # a blank line, as pandas skips it
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}, line {rows.line_num}: {len(row)} fields, expected {len(header)}")
            pending.append([row[i] for i in positions])
            if len(pending) == rows_per_chunk:
                _append_chunk(chunks, pending, types)
                pending = []
        _append_chunk(chunks, pending, types)
    table = pa.table({c: pa.chunked_array(chunks[c], types[c]) for c in wanted})
    duplicated = repeated_values(table.column("utt_id"))
    if duplicated:
        raise ValueError(f"{path}: duplicate utt_id values {duplicated[:5]}")
    return table.select(columns)


def _append_chunk(chunks: dict[str, list[pa.Array]], rows: list[list[str]], types: dict[str, pa.DataType]) -> None:
    """Append ``rows`` (cells of ``chunks``' columns, as text) to ``chunks`` as one Arrow array per column."""
    if not rows:
        return
    for values, (column, arrays) in zip(zip(*rows, strict=True), chunks.items(), strict=True):
        kind = _DTYPES.get(column, str)
        cells = values if kind is str else [kind(v) for v in values]
        # glibc's malloc, not Arrow's default pool: this process's RSS stays flat as chunks come and go
        arrays.append(pa.array(cells, types[column], memory_pool=pa.system_memory_pool()))


def manifest_rows(table: pa.Table, rows_per_batch: int = 4096) -> Iterator[tuple[Any, ...]]:
    """The rows of ``table`` as tuples, converted to Python a batch at a time."""
    for batch in table.to_batches(max_chunksize=rows_per_batch):
        yield from zip(*(column.to_pylist() for column in batch.columns), strict=True)


class AudioItems:
    """(utt_id, audio_path) of every row of a manifest, in manifest order: ``len()`` and iteration
    for the steps that go through a split once (extraction), without a Python object per row held
    (:func:`read_manifest_columns`)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        self.table = read_manifest_columns(path, ["utt_id", "audio_path"])

    def __len__(self) -> int:
        return self.table.num_rows

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return manifest_rows(self.table)
