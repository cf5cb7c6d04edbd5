"""Sequence feature files: per-utterance frame (acoustic) or token (text) matrices, keyed by utt_id.

The contract read by the neural fusion heads (``docs/architecture.md``), beside the pooled
features of :mod:`workflow_scripts.common.features`:

* column ``utt_id`` (string, unique);
* column ``length`` (int32): the number of rows (frames or tokens) of the utterance's matrix;
* column ``values`` (``large_list<float32>``): the ``(length, dim)`` matrix, row-major;
* schema metadata ``dfat`` (JSON): ``dim``, ``kind`` (``frames`` or ``tokens``), ``model``,
  ``checkpoint`` and whatever else the producer records (frame rate, token states ...).

Written in row groups of ``row_group_size`` utterances (:class:`SequenceWriter` buffers one
group at a time), read by :class:`SequenceFile`, which loads only ``utt_id`` and ``length`` up
front and the matrices of the row groups a batch needs, so a large corpus never needs all its
frames in memory at once (``load()`` keeps every matrix when the caller decides they fit).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from workflow_scripts.common.features import METADATA_KEY, ROW_GROUP_SIZE, ParquetStream

KINDS = ("frames", "tokens")


def sequence_schema(dim: int, kind: str, metadata: Mapping[str, Any]) -> pa.Schema:
    """The arrow schema of a sequence file of width ``dim``."""
    if kind not in KINDS:
        raise ValueError(f"sequence kind {kind!r}, expected one of {KINDS}")
    payload = {"dim": int(dim), "kind": kind, **metadata}
    fields = [
        pa.field("utt_id", pa.string(), nullable=False),
        pa.field("length", pa.int32(), nullable=False),
        pa.field("values", pa.large_list(pa.float32()), nullable=False),
    ]
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(payload, ensure_ascii=False).encode()})


class SequenceWriter(ParquetStream):
    """Stream per-utterance matrices into a sequence file (:class:`ParquetStream`), ``row_group_size``
    utterances per row group."""

    def __init__(
        self,
        path: str | os.PathLike,
        dim: int,
        kind: str,
        metadata: Mapping[str, Any],
        row_group_size: int = ROW_GROUP_SIZE,
    ) -> None:
        super().__init__(path, sequence_schema(dim, kind, metadata))
        self.dim = int(dim)
        self.row_group_size = max(1, int(row_group_size))
        self._ids: list[str] = []
        self._matrices: list[np.ndarray] = []

    def write(self, utt_ids: Sequence[str], matrices: Sequence[np.ndarray]) -> None:
        """Append utterances; ``matrices[i]`` has shape (length >= 1, dim) and finite values."""
        if len(utt_ids) != len(matrices):
            raise ValueError(f"{self.path}: {len(utt_ids)} utt_ids but {len(matrices)} matrices")
        for utt_id, matrix in zip(utt_ids, matrices, strict=True):
            utt_id = str(utt_id)
            values = np.asarray(matrix, dtype=np.float32)
            if values.ndim != 2 or values.shape[0] < 1 or values.shape[1] != self.dim:
                raise ValueError(
                    f"{self.path}: utt_id {utt_id!r} has a matrix of shape {values.shape}, "
                    f"expected (length >= 1, {self.dim})"
                )
            if not np.isfinite(values).all():
                raise ValueError(f"{self.path}: utt_id {utt_id!r} has non-finite values")
            self._ids.append(utt_id)
            self._matrices.append(values)
            if len(self._ids) >= self.row_group_size:
                self._flush(final=False)

    def _flush(self, final: bool) -> None:
        """Write the buffered utterances as one row group (a full group, or the last one)."""
        if not self._ids:
            return
        lengths = np.array([m.shape[0] for m in self._matrices], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths * self.dim)]).astype(np.int64)
        flat = np.concatenate([m.reshape(-1) for m in self._matrices])
        values = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), pa.array(flat, pa.float32()))
        batch = pa.RecordBatch.from_arrays(
            [pa.array(self._ids, pa.string()), pa.array(lengths.astype(np.int32), pa.int32()), values],
            schema=self.schema,
        )
        self._writer.write_table(pa.Table.from_batches([batch]), row_group_size=len(self._ids))
        self.rows += len(self._ids)
        self._ids, self._matrices = [], []


def read_sequence_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``dfat`` metadata of a sequence file."""
    metadata = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in metadata:
        raise ValueError(f"{path}: not a DFAT sequence file (no '{METADATA_KEY.decode()}' schema metadata)")
    payload = json.loads(metadata[METADATA_KEY])
    if "kind" not in payload:
        raise ValueError(f"{path}: a DFAT feature file, not a sequence file (no 'kind' in its metadata)")
    return payload


class SequenceFile:
    """Index (utt_ids, lengths) of a sequence file; matrices read by row position, group by group."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        self.metadata = read_sequence_metadata(path)
        self.dim = int(self.metadata["dim"])
        self._file = pq.ParquetFile(path)
        index = self._file.read(columns=["utt_id", "length"])
        self.utt_ids: list[str] = index.column("utt_id").to_pylist()
        self.lengths = index.column("length").to_numpy().astype(np.int64)
        if len(set(self.utt_ids)) != len(self.utt_ids):
            raise ValueError(f"{path}: duplicate utt_id in a sequence file")
        sizes = [self._file.metadata.row_group(g).num_rows for g in range(self._file.num_row_groups)]
        self._group_starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._loaded: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.utt_ids)

    @property
    def nbytes(self) -> int:
        """Bytes of all matrices as float32 (what :meth:`load` keeps in memory)."""
        return int(self.lengths.sum()) * self.dim * 4

    def positions(self, utt_ids: Sequence[str], where: str = "") -> np.ndarray:
        """Row positions of ``utt_ids``; every one must be in the file."""
        index = {u: i for i, u in enumerate(self.utt_ids)}
        missing = [u for u in utt_ids if u not in index]
        if missing:
            raise ValueError(
                f"{self.path}: no sequence for {len(missing)} utterance(s) of {where or 'the request'} "
                f"(e.g. {missing[:3]})"
            )
        return np.array([index[u] for u in utt_ids], dtype=np.int64)

    def load(self) -> SequenceFile:
        """Keep every matrix in memory (``nbytes``); later reads touch no file."""
        self._loaded = self.read(np.arange(len(self)))
        return self

    def read(self, positions: Sequence[int]) -> list[np.ndarray]:
        """The (length, dim) matrices at ``positions`` (in that order), reading only their row groups."""
        positions = np.asarray(positions, dtype=np.int64)
        if self._loaded is not None:
            return [self._loaded[p] for p in positions]
        groups = np.searchsorted(self._group_starts, positions, side="right") - 1
        out: list[np.ndarray | None] = [None] * len(positions)
        for group in np.unique(groups):
            column = self._file.read_row_group(int(group), columns=["values"]).column("values").combine_chunks()
            flat = column.values.to_numpy(zero_copy_only=False)
            offsets = column.offsets.to_numpy()
            for slot in np.flatnonzero(groups == group):
                row = int(positions[slot] - self._group_starts[group])
                matrix = flat[offsets[row] : offsets[row + 1]].reshape(-1, self.dim)
                if matrix.shape[0] != self.lengths[positions[slot]]:
                    raise ValueError(
                        f"{self.path}: utt_id {self.utt_ids[positions[slot]]!r} has {matrix.shape[0]} rows "
                        f"but length {self.lengths[positions[slot]]}"
                    )
                out[slot] = matrix.copy()
        return out  # type: ignore[return-value]


def pad_batch(matrices: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-padded [batch, max length, dim] float32 and the lengths [batch]."""
    lengths = np.array([m.shape[0] for m in matrices], dtype=np.int64)
    batch = np.zeros((len(matrices), int(lengths.max()), matrices[0].shape[1]), dtype=np.float32)
    for i, matrix in enumerate(matrices):
        batch[i, : len(matrix)] = matrix
    return batch, lengths
