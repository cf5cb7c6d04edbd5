"""Fusion inputs and outputs: pooled feature matrices with labels, joined by utt_id, and probabilities.

Pooling concatenates the configured per-utterance statistics of one modality (the paper:
mean, variance, max and min over frames or tokens) into one vector. Labels come from the
emotion corpus's manifest and are joined by ``utt_id``: never by text or row order. Scaling
is not done here but inside each classifier's pipeline, so it is fitted on training data
only, also within every cross-validation fold.

A pooled file is parquet with ``utt_id``, ``label`` and ``x`` (a fixed-width float32 vector),
and ``dfat_pooled`` schema metadata (modality, split, statistics, widths, source file and the
source's own feature metadata).
"""

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workflow_scripts.common.features import read_features, statistics_to_read
from workflow_scripts.common.files import atomic_path
from workflow_scripts.common.manifest import read_manifest
from workflow_scripts.common.names import MODALITIES, modality_of
from workflow_scripts.common.rule import run_rule

log = logging.getLogger(__name__)

POOLED_KEY = b"dfat_pooled"
MAX_LISTED_IDS = 5


class AlignmentError(ValueError):
    """Feature, label or probability files whose utterance ids do not match."""


@dataclass
class Pooled:
    """One split of one feature set: ids, labels (class names) and the feature matrix."""

    utt_ids: list[str]
    labels: list[str]
    X: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    speakers: list[str] | None = None  # from the manifest; groups the CV folds by speaker


def concat_statistics(
    stats: Mapping[str, np.ndarray], statistics: Sequence[str], where: str = "features"
) -> np.ndarray:
    """Concatenate per-utterance statistics (each (n, dim)) in the configured order: the pooled vector.

    Used for in-memory features (predict); files go through :func:`features.read_features`,
    which concatenates in the same order.
    """
    missing = [name for name in statistics if name not in stats]
    if missing:
        raise KeyError(f"{where}: no statistic(s) {missing}; available {sorted(stats)}")
    blocks = [np.asarray(stats[name], dtype=np.float32) for name in statistics]
    rows = {block.shape[0] for block in blocks}
    if len(rows) != 1 or any(block.ndim != 2 for block in blocks):
        raise ValueError(
            f"{where}: statistics must be 2-D with one row per utterance, got shapes "
            f"{[block.shape for block in blocks]}"
        )
    return np.concatenate(blocks, axis=1)


def _listed(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:MAX_LISTED_IDS])
    return shown + (f" ... ({len(ids)} in all)" if len(ids) > MAX_LISTED_IDS else "")


def align_ids(reference: Sequence[str], other: Sequence[str], reference_name: str, other_name: str) -> np.ndarray:
    """Row indices into ``other`` that put it in the order of ``reference``; both must hold the same ids."""
    position = {utt: i for i, utt in enumerate(other)}
    if len(position) != len(other):
        duplicated = pd.Series(list(other))[pd.Series(list(other)).duplicated()].tolist()
        raise AlignmentError(f"{other_name}: duplicate utt_id {_listed(duplicated)}")
    missing = [utt for utt in reference if utt not in position]
    extra = sorted(set(other) - set(reference))
    if missing or extra:
        parts = []
        if missing:
            parts.append(
                f"{len(missing)} utt_id(s) of {reference_name} are missing from {other_name}: {_listed(missing)}"
            )
        if extra:
            parts.append(f"{other_name} has {len(extra)} utt_id(s) not in {reference_name}: {_listed(extra)}")
        raise AlignmentError("; ".join(parts))
    return np.fromiter((position[utt] for utt in reference), dtype=np.int64, count=len(reference))


def read_labels(manifest_path: str | os.PathLike, classes: Sequence[str]) -> tuple[list[str], list[str]]:
    """(utt_ids, labels) of a speech manifest, checking that every label is a task class."""
    frame = read_manifest(manifest_path, columns=["utt_id", "label"])
    bad = frame.index[~frame["label"].isin(classes)]
    if len(bad):
        row = int(bad[0])
        raise ValueError(
            f"{manifest_path}, data row {row + 1} (utt_id {frame.at[row, 'utt_id']!r}): label "
            f"{frame.at[row, 'label']!r} is not a task class {list(classes)}"
        )
    if frame.empty:
        raise ValueError(f"{manifest_path}: the manifest has no utterances")
    return frame["utt_id"].tolist(), frame["label"].tolist()


def pool_split(
    feature_path: str | os.PathLike, manifest_path: str | os.PathLike, statistics: Sequence[str], classes: Sequence[str]
) -> Pooled:
    """Pool one split's feature file and attach the manifest's labels, in manifest order."""
    utt_ids, labels = read_labels(manifest_path, classes)
    statistics = statistics_to_read(feature_path, statistics)
    feature_ids, matrix, metadata = read_features(feature_path, statistics)
    order = align_ids(utt_ids, feature_ids, f"manifest {manifest_path}", f"feature file {feature_path}")
    info = {
        "statistics": list(statistics),
        "statistic_dim": int(metadata["dim"]),
        "dim": int(matrix.shape[1]),
        "source": str(feature_path),
        "source_metadata": metadata,
    }
    speakers = read_manifest(manifest_path, columns=["utt_id", "speaker"])["speaker"].fillna("").astype(str).tolist()
    return Pooled(utt_ids, labels, matrix[order], info, speakers)


def write_pooled(path: str | os.PathLike, pooled: Pooled) -> None:
    """Write a pooled split atomically."""
    dim = pooled.X.shape[1]
    fields = [
        pa.field("utt_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("x", pa.list_(pa.float32(), dim), nullable=False),
    ]
    values = pa.array(np.ascontiguousarray(pooled.X, dtype=np.float32).reshape(-1))
    columns = [
        pa.array(pooled.utt_ids, pa.string()),
        pa.array(pooled.labels, pa.string()),
        pa.FixedSizeListArray.from_arrays(values, dim),
    ]
    if pooled.speakers is not None:
        fields.append(pa.field("speaker", pa.string()))
        columns.append(pa.array(pooled.speakers, pa.string()))
    schema = pa.schema(fields, metadata={POOLED_KEY: json.dumps(pooled.info, ensure_ascii=False).encode()})
    table = pa.Table.from_arrays(columns, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_pooled(path: str | os.PathLike) -> Pooled:
    """Read a file written by :func:`write_pooled`."""
    metadata = pq.read_schema(path).metadata or {}
    if POOLED_KEY not in metadata:
        raise ValueError(f"{path}: not a pooled fusion file (no '{POOLED_KEY.decode()}' schema metadata)")
    info = json.loads(metadata[POOLED_KEY])
    table = pq.read_table(path)
    X = table.column("x").combine_chunks().values.to_numpy(zero_copy_only=False).reshape(len(table), info["dim"])
    speakers = table.column("speaker").to_pylist() if "speaker" in table.column_names else None
    return Pooled(table.column("utt_id").to_pylist(), table.column("label").to_pylist(), X, info, speakers)


def concat_modalities(parts: Sequence[Pooled]) -> Pooled:
    """Early fusion of one split: the modalities' pooled vectors side by side, joined by utt_id.

    The first part fixes the row order; the others are reordered to it, and labels must agree.
    """
    first = parts[0]
    blocks, infos = [first.X], [first.info]
    for part in parts[1:]:
        order = align_ids(
            first.utt_ids,
            part.utt_ids,
            first.info.get("path", "first modality"),
            part.info.get("path", "next modality"),
        )
        labels = [part.labels[i] for i in order]
        if labels != first.labels:
            bad = next(i for i, (a, b) in enumerate(zip(first.labels, labels)) if a != b)
            raise AlignmentError(
                f"utt_id {first.utt_ids[bad]!r}: label {first.labels[bad]!r} in "
                f"{first.info.get('path')} but {labels[bad]!r} in {part.info.get('path')}"
            )
        blocks.append(part.X[order])
        infos.append(part.info)
    return Pooled(
        list(first.utt_ids),
        list(first.labels),
        np.concatenate(blocks, axis=1),
        {"modalities": infos, "dim": int(sum(block.shape[1] for block in blocks))},
        first.speakers,
    )


def load_feature_set(paths: Sequence[str | os.PathLike]) -> dict[str, Pooled]:
    """Pooled files (any splits and modalities) -> split -> one feature matrix.

    Files are grouped by the split and modality recorded in their metadata; modalities are
    concatenated in :data:`MODALITIES` order, so early fusion is always acoustic then text.
    """
    by_split: dict[str, dict[str, Pooled]] = {}
    for path in paths:
        pooled = read_pooled(path)
        pooled.info["path"] = str(path)
        split, modality = pooled.info["split"], pooled.info["modality"]
        if modality in by_split.setdefault(split, {}):
            raise ValueError(f"{path}: a second {modality} file for split {split}")
        by_split[split][modality] = pooled
    modalities = {tuple(sorted(parts)) for parts in by_split.values()}
    if len(modalities) != 1:
        raise ValueError(f"pooled files cover different modalities per split: {sorted(modalities)}")
    result = {}
    for split, parts in by_split.items():
        ordered = [parts[m] for m in MODALITIES if m in parts]
        result[split] = ordered[0] if len(ordered) == 1 else concat_modalities(ordered)
    return result


def feature_spec(pooled: Pooled) -> list[dict[str, Any]]:
    """What a model trained on ``pooled`` expects per modality (for predict): statistics and widths."""
    infos = pooled.info["modalities"] if "modalities" in pooled.info else [pooled.info]
    return [
        {
            "modality": info["modality"],
            "statistics": info["statistics"],
            "statistic_dim": info["statistic_dim"],
            "dim": info["dim"],
            "model": info["source_metadata"].get("model"),
            "checkpoint": info["source_metadata"].get("checkpoint"),
        }
        for info in infos
    ]


def write_probabilities(
    path: str | os.PathLike, utt_ids: Sequence[str], probabilities: np.ndarray, classes: Sequence[str]
) -> None:
    """Probabilities parquet: ``utt_id`` plus one float column per class, atomically."""
    if probabilities.shape != (len(utt_ids), len(classes)):
        raise ValueError(
            f"{path}: probabilities of shape {probabilities.shape}, expected {(len(utt_ids), len(classes))}"
        )
    frame = pd.DataFrame(np.asarray(probabilities, dtype=np.float64), columns=list(classes))
    frame.insert(0, "utt_id", list(utt_ids))
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def read_probabilities(path: str | os.PathLike, classes: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(utt_ids, probabilities in ``classes`` order) of a probabilities parquet."""
    frame = pd.read_parquet(path)
    missing = [c for c in ["utt_id", *classes] if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: probabilities lack columns {missing} (has {list(frame.columns)})")
    return frame["utt_id"].astype(str).tolist(), frame.loc[:, list(classes)].to_numpy(dtype=np.float64)


def main(job: Any) -> None:
    """Entry point of the pool_features rule: one modality, every split (``job``: the rule's ``snakemake``)."""
    modality, statistics = job.wildcards.modality, job.params.pooling["statistics"]
    splits = list(job.params.splits)
    if not len(splits) == len(job.input.features) == len(job.input.manifests) == len(job.output.pooled):
        raise ValueError("pool_features: the features, manifests and pooled files must be one per split")
    for split, features, manifest, output in zip(
        splits, job.input.features, job.input.manifests, job.output.pooled, strict=True
    ):
        pooled = pool_split(features, manifest, statistics, job.params.classes)
        pooled.info.update(modality=modality_of(modality), split=split)
        write_pooled(output, pooled)
        log.info(
            "%s %s: %d utterances x %d (%s of %d-d %s)",
            modality,
            split,
            len(pooled.utt_ids),
            pooled.X.shape[1],
            "+".join(statistics),
            pooled.info["statistic_dim"],
            pooled.info["source_metadata"].get("model"),
        )


if __name__ == "__main__":
    run_rule(main)
