"""Feature files: parquet keyed by utt_id, one fixed-width float32 vector column per statistic.

The contract shared by the acoustic (SEFE) and text (TEFE) encoders and read by fusion:

* column ``utt_id`` (string, unique);
* one ``FixedSizeList<float32>[dim]`` column per statistic, e.g. ``mean``, ``var``, ``max``,
  ``min`` over frames / tokens (TEFE adds ``sentence``, the layer before its output);
* schema metadata ``dfat`` (JSON): ``dim``, ``statistics``, ``model`` (backend or architecture),
  ``checkpoint`` and ``preprocessing``, plus whatever else the producer records.

:class:`FeatureWriter` appends batches, so producers stream and peak memory stays flat: rows go to
the file in row groups of ``ROW_GROUP_SIZE`` utterances, whatever the producer's batch (a row group
per small batch grows the file's footer, which the writer holds until it closes, by about 400 bytes
per utterance; and the layout then depends on the rows alone, so a gathered file equals one job's).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from workflow_scripts.common.files import atomic_path
from workflow_scripts.common.manifest import repeated_values
from workflow_scripts.common.names import FUNCTIONALS

METADATA_KEY = b"dfat"
ROW_GROUP_SIZE = 256  # utterances per row group of feature and sequence files


def feature_schema(statistics: Sequence[str], dim: int, metadata: Mapping[str, Any]) -> pa.Schema:
    """The arrow schema of a feature file with these statistics and width."""
    fields = [pa.field("utt_id", pa.string(), nullable=False)]
    fields += [pa.field(name, pa.list_(pa.float32(), dim), nullable=False) for name in statistics]
    payload = {"dim": int(dim), "statistics": list(statistics), **metadata}
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(payload, ensure_ascii=False).encode()})


def _batch(schema: pa.Schema, utt_ids: Sequence[str], stats: Mapping[str, np.ndarray]) -> pa.RecordBatch:
    dim = json.loads(schema.metadata[METADATA_KEY])["dim"]
    arrays = [pa.array(list(utt_ids), pa.string())]
    for field in schema:
        if field.name == "utt_id":
            continue
        if field.name not in stats:
            raise KeyError(f"feature batch lacks statistic {field.name!r} (has {sorted(stats)})")
        values = np.ascontiguousarray(stats[field.name], dtype=np.float32)
        if values.shape != (len(utt_ids), dim):
            raise ValueError(f"statistic {field.name!r}: shape {values.shape}, expected {(len(utt_ids), dim)}")
        if not np.isfinite(values).all():
            raise ValueError(f"statistic {field.name!r} has non-finite values")
        arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), dim))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


class ParquetStream:
    """A parquet file written in pieces that appears only when closed successfully, holding each
    utt_id once (checked at the end); subclasses buffer rows and write them in :meth:`_flush`.

    Use as a context manager; on an exception the partial file is removed.
    """

    def __init__(self, path: str | os.PathLike, schema: pa.Schema) -> None:
        self.path = Path(path)
        self.schema = schema
        self._atomic = atomic_path(self.path)
        self._tmp: Path | None = None
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def __enter__(self) -> Self:
        self._tmp = self._atomic.__enter__()
        self._writer = pq.ParquetWriter(self._tmp, self.schema)
        return self

    def _flush(self, final: bool) -> None:
        """Write buffered rows (all of them when ``final``)."""
        raise NotImplementedError

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self._writer.close()
            return self._atomic.__exit__(exc_type, exc, tb)
        try:
            try:
                self._flush(final=True)
            finally:
                self._writer.close()
            check_unique_ids(self._tmp, self.path)
        except BaseException as error:  # nothing is published: the temporary file goes
            self._atomic.__exit__(type(error), error, error.__traceback__)
            raise
        return self._atomic.__exit__(None, None, None)


class FeatureWriter(ParquetStream):
    """Stream feature batches into a feature file (:class:`ParquetStream`), in row groups of
    ``ROW_GROUP_SIZE`` utterances whatever the batches' sizes."""

    def __init__(
        self, path: str | os.PathLike, statistics: Sequence[str], dim: int, metadata: Mapping[str, Any]
    ) -> None:
        super().__init__(path, feature_schema(statistics, dim, metadata))
        self._pending: list[pa.RecordBatch] = []

    def write(self, utt_ids: Sequence[str], stats: Mapping[str, np.ndarray]) -> None:
        """Append rows; ``stats[name]`` has shape (len(utt_ids), dim)."""
        self._pending.append(_batch(self.schema, utt_ids, stats))
        self.rows += len(utt_ids)
        if sum(len(batch) for batch in self._pending) >= ROW_GROUP_SIZE:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        """Write the pending rows' whole row groups (all of them when ``final``), keep the rest."""
        pending = pa.Table.from_batches(self._pending, schema=self.schema)
        whole = len(pending) if final else len(pending) - len(pending) % ROW_GROUP_SIZE
        if whole:
            self._writer.write_table(pending.slice(0, whole), row_group_size=ROW_GROUP_SIZE)
        self._pending = pending.slice(whole).combine_chunks().to_batches() if whole < len(pending) else []


def check_unique_ids(written: str | os.PathLike, named: str | os.PathLike) -> None:
    """Refuse a just-written file (``written``, published as ``named``) that repeats an utt_id.

    Checked once at the end on the file's utt_id column (Arrow strings, a few bytes per row), not
    with a set of every id held while writing (about 100 bytes per row, growing with the split).
    """
    repeated = repeated_values(pq.read_table(written, columns=["utt_id"]).column("utt_id"))
    if repeated:
        raise ValueError(f"{named}: duplicate utt_id {', '.join(map(repr, sorted(repeated)[:5]))}")


def write_features(
    path: str | os.PathLike, utt_ids: Sequence[str], stats: Mapping[str, np.ndarray], metadata: Mapping[str, Any]
) -> None:
    """Write a whole feature file at once (see :class:`FeatureWriter` for streaming)."""
    first = next(iter(stats.values()))
    with FeatureWriter(path, list(stats), first.shape[1], metadata) as writer:
        writer.write(utt_ids, stats)


def read_feature_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``dfat`` metadata of a feature file."""
    metadata = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in metadata:
        raise ValueError(f"{path}: not a DFAT feature file (no '{METADATA_KEY.decode()}' schema metadata)")
    return json.loads(metadata[METADATA_KEY])


def statistics_to_read(path: str | os.PathLike, configured: Sequence[str]) -> list[str]:
    """The statistics a consumer reads from the feature file ``path``: ``configured`` (a choice among the
    statistics pooled over frames), or the file's own utterance functionals whole when it holds them
    (the openSMILE backends; names.FUNCTIONALS), which no such choice applies to."""
    available = read_feature_metadata(path)["statistics"]
    return [FUNCTIONALS] if FUNCTIONALS in available else list(configured)


def read_features(path: str | os.PathLike, statistics: Sequence[str]) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """Read ``statistics`` concatenated in the given order: (utt_ids, float32 matrix, metadata)."""
    metadata = read_feature_metadata(path)
    missing = [s for s in statistics if s not in metadata["statistics"]]
    if missing:
        raise KeyError(f"{path}: no statistic(s) {missing}; the file has {metadata['statistics']}")
    table = pq.read_table(path, columns=["utt_id", *statistics])
    dim = metadata["dim"]
    blocks = [
        table.column(s).combine_chunks().values.to_numpy(zero_copy_only=False).reshape(-1, dim) for s in statistics
    ]
    matrix = np.concatenate(blocks, axis=1).astype(np.float32, copy=False) if blocks else np.zeros((len(table), 0))
    return table.column("utt_id").to_pylist(), matrix, metadata
