"""Shards of a split (config ``scale.shards``): deterministic subsets of its manifest, and the gather.

With ``scale.shards`` = N > 1, rule ``shard_manifest`` cuts a split's manifest into N shard manifests
(``paths.SPEECH_SHARD_MANIFEST``; shard names ``names.shard_names``): an utterance goes to the shard
that a stable hash of its utt_id picks (BLAKE2b, the same on every machine and Python version, unlike
``hash()``), rows in manifest order. Each per-split step then runs unchanged on each shard manifest
(its output at ``paths.shard_file(<its template>)``), and a gather rule joins the shard files into the
split's contract file (:func:`gather_shards`): the rows in the split manifest's order, the same
schema, the same row groups, and the same ``dfat`` metadata as one job over the
split writes (:func:`merged_metadata`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from workflow_scripts.common.features import METADATA_KEY, ROW_GROUP_SIZE
from workflow_scripts.common.files import atomic_path
from workflow_scripts.common.manifest import read_manifest, read_manifest_columns, write_manifest
from workflow_scripts.common.paths import split_file

# Metadata figures of a producer's run that add up over the shards (utterances, seconds, counts) ...
ADDITIVE = frozenset({"utterances", "empty_texts", "audio_seconds", "decode_seconds"})
# ... and ratios of two of them in the same block, recomputed from the sums (with these digits).
RATIOS = {"real_time_factor": ("decode_seconds", "audio_seconds", 4)}


def shard_index(utt_id: str, count: int) -> int:
    """The 0-based shard of ``utt_id`` among ``count`` shards (a stable hash of its UTF-8 bytes)."""
    digest = hashlib.blake2b(utt_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def write_shard_manifests(manifest: str | os.PathLike, outputs: Sequence[str | os.PathLike]) -> list[int]:
    """Write the ``len(outputs)`` shard manifests of ``manifest`` (rows in manifest order); returns their
    sizes. An empty shard is an error: the split is too small for that many shards."""
    frame = read_manifest(manifest)
    shards = frame["utt_id"].map(lambda utt_id: shard_index(str(utt_id), len(outputs)))
    sizes = [int((shards == index).sum()) for index in range(len(outputs))]
    empty = [str(outputs[index]) for index, size in enumerate(sizes) if size == 0]
    if empty:
        raise ValueError(
            f"{manifest}: {len(frame)} utterances leave {len(empty)} of {len(outputs)} shards empty "
            f"(e.g. {empty[0]}); lower config scale.shards for this corpus"
        )
    for index, path in enumerate(outputs):
        write_manifest(frame.loc[shards == index], path, list(frame.columns))
    return sizes


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def merged_metadata(values: Sequence[Any], key: str = "dfat") -> Any:
    """One metadata value from the shards' values of ``key``: ADDITIVE figures are summed and RATIOS
    recomputed from the sums; a shard file's path becomes the split's (``paths.split_file``); every
    other value must be the same in every shard (an error names the key)."""
    name = key.rsplit(".", 1)[-1]
    if all(isinstance(value, dict) for value in values):
        keys = list(values[0])
        if any(list(value) != keys for value in values):
            raise ValueError(f"metadata {key}: the shards have different keys {[list(v) for v in values]}")
        merged = {item: merged_metadata([value[item] for value in values], f"{key}.{item}") for item in keys}
        for ratio, (numerator, denominator, digits) in RATIOS.items():
            if ratio in merged and _is_number(merged.get(numerator)) and _is_number(merged.get(denominator)):
                merged[ratio] = round(merged[numerator] / merged[denominator], digits) if merged[denominator] else None
        return merged
    if name in ADDITIVE and all(_is_number(value) for value in values):
        total = sum(values)
        return total if all(isinstance(value, int) for value in values) else round(total, 6)
    if name in RATIOS:
        return values[0]  # recomputed from the summed parts in the enclosing block
    values = [split_file(value) if isinstance(value, str) else value for value in values]
    if all(value == values[0] for value in values):
        return values[0]
    raise ValueError(f"metadata {key}: the shards disagree ({values[:4]})")


def _arrow_schema(path: str | os.PathLike, parquet: pq.ParquetFile) -> pa.Schema:
    """The arrow schema the file was written with (its ``ARROW:schema``): reading back renames list
    items to ``element``, and rewriting that schema would change the file's bytes."""
    stored = (parquet.metadata.metadata or {}).get(b"ARROW:schema")
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(stored))) if stored else parquet.schema_arrow
    if METADATA_KEY not in (schema.metadata or {}):
        raise ValueError(f"{path}: not a DFAT file (no '{METADATA_KEY.decode()}' schema metadata)")
    return schema


class _ShardRows:
    """The rows of one shard file in their order, read a record batch at a time (as written: with the
    file's arrow schema, without metadata)."""

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, batch_rows: int) -> None:
        self._schema = schema.remove_metadata()
        self._batches = pq.ParquetFile(path).iter_batches(batch_size=batch_rows)
        self._table = pa.table({name: [] for name in self._schema.names}).cast(self._schema)
        self._offset = 0

    def take(self, count: int) -> pa.Table:
        """The next ``count`` rows."""
        pieces = []
        while count:
            if self._offset == len(self._table):
                self._table, self._offset = pa.Table.from_batches([next(self._batches)]).cast(self._schema), 0
            size = min(count, len(self._table) - self._offset)
            pieces.append(self._table.slice(self._offset, size))
            self._offset, count = self._offset + size, count - size
        return pa.concat_tables(pieces) if pieces else self._table.slice(0, 0)


def _shard_index(shard_files: Sequence[str | os.PathLike], wanted: Sequence[str], manifest: str | os.PathLike):
    """The shard of every manifest row (an array in manifest order), the shards' arrow schema, ``dfat``
    metadata; checks that the shards hold the manifest's utterances exactly once,
    each shard in manifest order."""
    position = {utt_id: index for index, utt_id in enumerate(wanted)}
    owner = np.full(len(wanted), -1, dtype=np.int64)
    schemas, payloads, unknown = [], [], []
    for shard, path in enumerate(shard_files):
        parquet = pq.ParquetFile(path)
        schemas.append(_arrow_schema(path, parquet))
        payloads.append(json.loads(schemas[-1].metadata[METADATA_KEY]))
        if not schemas[-1].remove_metadata().equals(schemas[0].remove_metadata()):
            raise ValueError(f"{path}: columns {schemas[-1].names} differ from {shard_files[0]}'s")
        ids = parquet.read(columns=["utt_id"]).column("utt_id").to_pylist()
        unknown += [utt_id for utt_id in ids if utt_id not in position]
        rows = np.array([position[utt_id] for utt_id in ids if utt_id in position], dtype=np.int64)
        if len(rows) and (np.diff(rows) <= 0).any():
            raise ValueError(f"{path}: rows are not in the order of {manifest}")
        repeated = rows[owner[rows] >= 0]
        if len(repeated):
            raise ValueError(
                f"utt_id {wanted[repeated[0]]!r} is in more than one shard of {list(map(str, shard_files))}"
            )
        owner[rows] = shard
    missing = [wanted[index] for index in np.flatnonzero(owner < 0)]
    if missing or unknown:
        raise ValueError(
            f"the shards {[str(path) for path in shard_files]} do not cover {manifest}: "
            f"{len(missing)} utterances missing (e.g. {missing[:3]}), "
            f"{len(unknown)} unknown (e.g. {sorted(unknown)[:3]})"
        )
    return owner, schemas[0], payloads


def row_group_size(metadata: dict[str, Any]) -> int | None:
    """Row groups of a gathered file, as one job over the split lays them out: feature and sequence
    files (``statistics`` or ``kind`` in their metadata) are written in groups of ``ROW_GROUP_SIZE``
    utterances whatever the producer's batches; transcripts in one piece (None)."""
    return ROW_GROUP_SIZE if "statistics" in metadata or "kind" in metadata else None


def gather_shards(
    shard_files: Sequence[str | os.PathLike], manifest: str | os.PathLike, output: str | os.PathLike
) -> int:
    """Join the shard files of one split into ``output``, rows in ``manifest``'s order; returns the rows.

    The shards must have the same columns and hold the manifest's utterances exactly once, each
    shard in manifest order (as its step writes it). Written with the shards' arrow schema and the
    row groups of :func:`row_group_size`, the file has the bytes one job over the split writes
    wherever the producer's layout depends on the rows alone. Streamed one row group at a time:
    memory holds about one row group per shard, whatever the split's size (a file written in one
    piece, the transcripts, is joined in memory).
    """
    wanted = read_manifest_columns(manifest, ["utt_id"]).column("utt_id").to_pylist()
    owner, schema, payloads = _shard_index(shard_files, wanted, manifest)
    metadata = merged_metadata(payloads)
    group_rows = row_group_size(metadata)
    step = group_rows or max(len(wanted), 1)
    readers = [_ShardRows(path, schema, min(step, ROW_GROUP_SIZE)) for path in shard_files]
    schema = schema.with_metadata({METADATA_KEY: json.dumps(metadata, ensure_ascii=False).encode()})
    with atomic_path(output) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, len(wanted), step):
            shards = owner[start : start + step]
            counts = np.bincount(shards, minlength=len(readers))
            parts = pa.concat_tables([reader.take(int(count)) for reader, count in zip(readers, counts, strict=True)])
            # The chunk's rows in manifest order: shard s's rows follow the rows of the shards before it.
            offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
            rank = np.zeros(len(shards), dtype=np.int64)
            for shard in np.unique(shards):
                rank[shards == shard] = np.arange(counts[shard])
            writer.write_table(parts.take(pa.array(offsets[shards] + rank)).cast(schema), row_group_size=step)
    return len(wanted)
