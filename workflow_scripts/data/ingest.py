"""Corpus ingestion shared by speech and text corpora: a user's table -> validated rows, splits, summary.

Every rejected row is named with its table, data row (1-based, header excluded), utterance id
and reason: the step fails on the first batch of problems, or, with ``on_invalid: skip``,
writes them to a skip list next to the manifests. Nothing is dropped silently. The rules run
:mod:`workflow_scripts.data.ingest_speech` and :mod:`workflow_scripts.data.ingest_text`.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from workflow_scripts.common.files import write_json
from workflow_scripts.common.logs import warn_on_screen
from workflow_scripts.common.manifest import AUDIO_SHA256, read_table, unsafe_utt_id, write_manifest
from workflow_scripts.data.corpus_config import check_split_block
from workflow_scripts.data.splits import assign_splits

log = logging.getLogger(__name__)

MAX_LISTED_PROBLEMS = 20
Problems = list[tuple[int, str]]  # (row index, reason)


class IngestionError(ValueError):
    """Rows of a corpus table that cannot be used, each named with its row and reason."""


def load_corpus_table(spec: Mapping[str, Any]) -> pd.DataFrame:
    """Read the corpus table(s); ``table`` is one path, or a mapping split -> path.

    Adds ``_source`` (file) and ``_row`` (1-based data row) for error messages, and
    ``_split_from_file`` when the split comes from the mapping. ``attrs["columns"]`` holds
    each file's own columns. A table without data rows is an error naming the file.
    """
    tables = spec["table"]
    parts, columns = [], {}
    items = tables.items() if isinstance(tables, Mapping) else [(None, tables)]
    for split, path in items:
        frame = read_table(path)
        if frame.empty:
            raise IngestionError(
                f"{path}: no data rows (columns {list(frame.columns)}); a corpus table needs one row per utterance"
            )
        columns[str(path)] = [str(c) for c in frame.columns]
        frame["_source"] = str(path)
        frame["_row"] = range(1, len(frame) + 1)
        if split is not None:
            frame["_split_from_file"] = split
        parts.append(frame)
    frame = pd.concat(parts, ignore_index=True)
    frame.attrs["columns"] = columns
    return frame


def table_column(frame: pd.DataFrame, spec: Mapping[str, Any], key: str, required: bool) -> pd.Series | None:
    """The table column configured under ``columns.<key>`` as stripped text, or None when not configured.

    Missing values (null in parquet) become empty strings, so they meet the empty-value checks.
    """
    name = spec["columns"][key]
    if name is None:
        if required:
            raise IngestionError(f"corpus config: columns.{key} is required")
        return None
    for source, columns in frame.attrs.get("columns", {}).items():
        if name not in columns:
            raise IngestionError(
                f"{source}: no column {name!r} (configured as columns.{key}); the file's columns are {columns}"
            )
    column = frame[name]
    return column.where(column.notna(), "").astype(str).str.strip()


def _where(frame: pd.DataFrame, index: int) -> str:
    return f"{frame.at[index, '_source']}, data row {frame.at[index, '_row']}"


def map_labels(raw: pd.Series, label_map: Mapping[str, str | None], classes: Sequence[str]) -> pd.Series:
    """Map raw labels to task classes; ``None`` in the map excludes a label on purpose.

    Unknown raw labels are returned as the sentinel ``"<unknown>"`` for the caller to report.
    """
    bad_targets = {k: v for k, v in label_map.items() if v is not None and v not in classes}
    if bad_targets:
        raise IngestionError(f"label_map maps to classes not in task.classes {list(classes)}: {bad_targets}")
    mapped = raw.map(lambda value: label_map[value] if value in label_map else "<unknown>")
    return mapped


def id_and_label_problems(frame: pd.DataFrame, spec: Mapping[str, Any]) -> Problems:
    """Rows whose utt_id repeats an earlier row's or is no safe file name (common/manifest.unsafe_utt_id),
    and rows whose raw label the label map does not know."""
    problems = [(i, f"duplicate utt_id {frame.at[i, 'utt_id']!r}") for i in frame.index[frame["utt_id"].duplicated()]]
    unsafe = ((i, unsafe_utt_id(u)) for i, u in frame["utt_id"].items() if u != "")
    problems += [(i, reason) for i, reason in unsafe if reason]
    problems += [
        (i, f"unknown label {frame.at[i, 'raw_label']!r} (label_map knows {sorted(spec['label_map'])})")
        for i in frame.index[frame["label"] == "<unknown>"]
    ]
    return problems


def resolve_splits(
    frame: pd.DataFrame,
    spec: Mapping[str, Any],
    split_names: Sequence[str],
    labels: pd.Series,
    speakers: pd.Series | None,
    seed: int,
    corpus: str,
) -> pd.Series:
    """The split of every row: from the table / per-split files, or a seeded stratified split (of ``corpus``,
    named in its errors)."""
    policy, rename = spec["split"]["policy"], spec["split"]["rename"]
    if "_split_from_file" in frame.columns:
        splits = frame["_split_from_file"]
    elif policy == "table":
        column = table_column(frame, spec, "split", required=True)
        splits = column
    else:
        try:
            check_split_block(spec, split_names, "corpus config")
        except ValueError as error:
            raise IngestionError(str(error)) from error
        fractions = spec["split"]["fractions"]
        use_speakers = speakers if spec["split"]["speaker_disjoint"] else None
        try:
            return assign_splits(labels, {n: fractions[n] for n in split_names}, seed, use_speakers)
        except ValueError as error:
            raise IngestionError(
                f"corpus {corpus} ({', '.join(sorted(frame['_source'].unique()))}): {error}"
            ) from error
    splits = splits.map(lambda s: rename.get(s, s))
    return splits


def drop_rejected(
    frame: pd.DataFrame, problems: Problems, excluded: pd.Series, on_invalid: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows kept (neither ``excluded`` nor a problem) and the skip list of the problem rows.

    Raises naming every problem row unless ``on_invalid == 'skip'``.
    """
    problems = sorted(problems)
    skipped = pd.DataFrame(
        [
            {
                "source": frame.at[i, "_source"],
                "row": int(frame.at[i, "_row"]),
                "utt_id": frame.at[i, "utt_id"],
                "reason": reason,
            }
            for i, reason in problems
        ],
        columns=["source", "row", "utt_id", "reason"],
    )
    if problems and on_invalid != "skip":
        lines = [f"{_where(frame, i)} (utt_id {frame.at[i, 'utt_id']!r}): {reason}" for i, reason in problems]
        more = len(lines) - MAX_LISTED_PROBLEMS
        text = "\n  ".join(lines[:MAX_LISTED_PROBLEMS]) + (f"\n  ... and {more} more" if more > 0 else "")
        raise IngestionError(
            f"{len(problems)} invalid row(s) (set on_invalid: skip to write them to a skip list instead):\n  {text}"
        )
    keep = ~excluded & ~frame.index.isin([i for i, _ in problems])
    if not keep.any():
        sources = ", ".join(sorted(frame["_source"].unique()))
        reasons = "".join(
            f"\n  {_where(frame, i)} (utt_id {frame.at[i, 'utt_id']!r}): {reason}" for i, reason in problems[:5]
        )
        more = f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise IngestionError(
            f"{sources}: no usable utterance: {len(problems)} of {len(frame)} row(s) invalid (skipped), "
            f"{int(excluded.sum())} excluded by the label_map (null); fix the rows, the columns or the "
            f"label_map:{reasons}{more}"
        )
    return frame.loc[keep].copy(), skipped


def uses_speaker_disjoint_split(frame: pd.DataFrame, spec: Mapping[str, Any]) -> bool:
    """Whether the splits are drawn here keeping speakers disjoint (policy stratified, speaker_disjoint)."""
    split = spec["split"]
    return "_split_from_file" not in frame.columns and split["policy"] == "stratified" and split["speaker_disjoint"]


def fill_blank_speakers(frame: pd.DataFrame, spec: Mapping[str, Any], disjoint: bool) -> pd.Series:
    """The speaker of every row; blank cells per ``split.missing_speaker``.

    ``error`` (default): a speaker-disjoint split with blank speaker cells fails naming the rows
    (one blank cell would otherwise let speakers leak between splits). ``own_speaker``: each
    blank-speaker row becomes its own speaker, ``unknown_speaker:<utt_id>``.
    """
    speakers = frame["speaker"].copy()
    blank = speakers == ""
    if not blank.any():
        return speakers
    if spec["split"]["missing_speaker"] == "own_speaker":
        own = "unknown_speaker:" + frame.loc[blank, "utt_id"]
        clash = sorted(set(own) & set(speakers[~blank]))
        if clash:
            raise IngestionError(f"split.missing_speaker own_speaker: speaker ids {clash[:5]} already exist")
        speakers[blank] = own
        return speakers
    if disjoint:
        rows = frame.index[blank]
        lines = [f"{_where(frame, i)} (utt_id {frame.at[i, 'utt_id']!r})" for i in rows[:MAX_LISTED_PROBLEMS]]
        more = len(rows) - MAX_LISTED_PROBLEMS
        text = "\n  ".join(lines) + (f"\n  ... and {more} more" if more > 0 else "")
        raise IngestionError(
            f"{len(rows)} row(s) with an empty speaker cell, but the split is speaker-disjoint "
            "(split.policy stratified, split.speaker_disjoint true): fill in their speakers, set "
            "split.missing_speaker: own_speaker to give each such row its own speaker id, or set "
            f"split.speaker_disjoint: false:\n  {text}"
        )
    return speakers


def check_split_minimums(
    frame: pd.DataFrame,
    classes: Sequence[str],
    split_names: Sequence[str],
    train_split: str,
    strict: bool,
    corpus: str,
) -> list[str]:
    """Enforce the minimums of a corpus's splits; return the warnings of what may go on.

    ``strict`` (the emotion corpus, the text corpus): every split needs an utterance and the
    training split every class (errors); a class missing from another split is a warning.
    Otherwise (a corpus used only for ASR training) those are all warnings.
    """
    errors, warnings = [], []
    empty = [s for s in split_names if not (frame["split"] == s).any()]
    if empty:
        allowed = "" if strict else " (allowed: not the emotion corpus, ser_corpus)"
        (errors if strict else warnings).append(f"corpus {corpus}: split(s) {empty} have no utterances{allowed}")
    for split in split_names:
        if split in empty:
            continue
        present = set(frame.loc[frame["split"] == split, "label"])
        absent = [c for c in classes if c not in present]
        if absent:
            message = f"corpus {corpus}: split {split} has no utterance of class(es) {absent}"
            (errors if strict and split == train_split else warnings).append(message)
    if errors:
        raise IngestionError(
            "; ".join(errors) + f" ({len(frame)} utterances in all). Check the split column, split.rename, "
            "split.fractions and the label_map, or (too few rows) use more data"
        )
    return warnings


def _row_names(frame: pd.DataFrame, rows: Sequence[int]) -> str:
    return "; ".join(
        f"{_where(frame, i)} (utt_id {frame.at[i, 'utt_id']!r}, {frame.at[i, 'audio_path']})" for i in rows
    )


def check_duplicate_audio(frame: pd.DataFrame, corpus: str) -> list[str]:
    """Fail on the same audio (equal ``audio_sha256``) in two splits, naming both rows; return a warning
    with the count of files that repeat within one split (nothing leaks, but the split counts them twice)."""
    repeated = frame[frame[AUDIO_SHA256].duplicated(keep=False)]
    across = [group for _, group in repeated.groupby(AUDIO_SHA256, sort=True) if group["split"].nunique() > 1]
    if across:
        lines = [
            f"{_row_names(frame, group.index[:2])} (splits {sorted(group['split'].unique())})"
            for group in across[:MAX_LISTED_PROBLEMS]
        ]
        more = f"\n  ... and {len(across) - MAX_LISTED_PROBLEMS} more" if len(across) > MAX_LISTED_PROBLEMS else ""
        raise IngestionError(
            f"corpus {corpus}: {len(across)} audio file(s) with the same content (SHA-256) in two splits: test "
            "audio would leak into training; list each recording once (remove the copies):\n  "
            + "\n  ".join(lines)
            + more
        )
    copies = len(repeated) - repeated[AUDIO_SHA256].nunique()
    if not copies:
        return []
    return [
        f"corpus {corpus}: {copies} row(s) repeat the audio (same SHA-256) of another row of the same split; "
        f"first: {_row_names(frame, repeated.index[:2])}"
    ]


def normalised_sentence(text: str) -> str:
    """A sentence compared across splits: NFC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def shared_sentence_warnings(frame: pd.DataFrame, train_split: str, corpus: str) -> list[str]:
    """A warning per other split with the number of its rows whose normalised sentence is also in the training split."""
    sentences = frame["text"].map(normalised_sentence)
    training = set(sentences[frame["split"] == train_split])
    warnings = []
    for split in sorted(set(frame["split"]) - {train_split}):
        shared = int(sentences[frame["split"] == split].isin(training).sum())
        if shared:
            warnings.append(
                f"corpus {corpus}: {shared} row(s) of split {split} have the same normalised sentence as a row of "
                f"the training split {train_split} (scores on {split} partly measure memorised sentences)"
            )
    return warnings


def report_warnings(summary: dict[str, Any], warnings: Sequence[str]) -> None:
    """Record ``warnings`` in the summary and print each on screen (and in the log)."""
    summary["warnings"] = list(warnings)
    for message in warnings:
        warn_on_screen(log, message)


def check_split_names(frame: pd.DataFrame, split_names: Sequence[str]) -> None:
    """Fail naming the first row whose split is not one of ``split_names``."""
    unknown = sorted(set(frame["split"]) - set(split_names))
    if unknown:
        first = frame.index[frame["split"].isin(unknown)][0]
        raise IngestionError(
            f"{_where(frame, first)}: split values {unknown} are not among the configured splits "
            f"{list(split_names)} (map them with split.rename)"
        )


def summarise(
    frame: pd.DataFrame, classes: Sequence[str], split_names: Sequence[str], excluded: int, skipped: int
) -> dict[str, Any]:
    """Counts per split and class, rows excluded by the label map and rows skipped."""
    counts = {
        split: {label: int(((frame["split"] == split) & (frame["label"] == label)).sum()) for label in classes}
        for split in split_names
    }
    return {"utterances": len(frame), "counts": counts, "excluded_by_label_map": excluded, "skipped": skipped}


def write_outputs(
    manifest: pd.DataFrame,
    skipped: pd.DataFrame,
    summary: dict[str, Any],
    columns: list[str],
    manifest_paths: Mapping[str, str | os.PathLike],
    skipped_path: str | os.PathLike,
    summary_path: str | os.PathLike,
) -> None:
    """Write each split's rows to ``manifest_paths[split]``, the skip list and the summary."""
    for split, path in manifest_paths.items():
        write_manifest(manifest[manifest["split"] == split], path, columns)
    write_manifest(skipped, skipped_path, list(skipped.columns))
    write_json(summary_path, summary)
    log.info("wrote %d utterances (summary %s): %s", len(manifest), summary_path, summary["counts"])
