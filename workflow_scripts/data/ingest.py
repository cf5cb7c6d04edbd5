"""Corpus ingestion: a user's table -> validated manifests per split, plus a summary.

Every rejected row is named with its table, data row (1-based, header excluded), utterance id
and reason: the step fails on the first batch of problems, or, with ``on_invalid: skip``,
writes them to a skip list next to the manifests. Nothing is dropped silently.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from workflow_scripts.common.audio import AudioError, check_audio
from workflow_scripts.common.files import parse_json_argument, write_json
from workflow_scripts.common.logs import setup_logging
from workflow_scripts.common.manifest import SPEECH_COLUMNS, TEXT_COLUMNS, read_table, write_manifest
from workflow_scripts.data.splits import assign_splits

log = logging.getLogger(__name__)

MAX_LISTED_PROBLEMS = 20


class IngestionError(ValueError):
    """Rows of a corpus table that cannot be used, each named with its row and reason."""


def load_corpus_table(spec: Mapping[str, Any]) -> pd.DataFrame:
    """Read the corpus table(s); ``table`` is one path, or a mapping split -> path.

    Adds ``_source`` (file) and ``_row`` (1-based data row) for error messages, and
    ``_split_from_file`` when the split comes from the mapping.
    """
    tables = spec["table"]
    parts = []
    items = tables.items() if isinstance(tables, Mapping) else [(None, tables)]
    for split, path in items:
        frame = read_table(path)
        frame["_source"] = str(path)
        frame["_row"] = range(1, len(frame) + 1)
        if split is not None:
            frame["_split_from_file"] = split
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def _column(frame: pd.DataFrame, spec: Mapping[str, Any], key: str, required: bool) -> pd.Series | None:
    """The table column configured under ``columns.<key>``, or None when not configured."""
    name = spec.get("columns", {}).get(key)
    if name is None:
        if required:
            raise IngestionError(f"corpus config: columns.{key} is required")
        return None
    if name not in frame.columns:
        sources = sorted(frame["_source"].unique())
        raise IngestionError(
            f"{', '.join(sources)}: no column {name!r} (configured as columns.{key}); "
            f"columns are {[c for c in frame.columns if not c.startswith('_')]}"
        )
    return frame[name].astype(str).str.strip()


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


def resolve_splits(
    frame: pd.DataFrame,
    spec: Mapping[str, Any],
    split_names: Sequence[str],
    labels: pd.Series,
    speakers: pd.Series | None,
    seed: int,
) -> pd.Series:
    """The split of every row: from the table / per-split files, or a seeded stratified split."""
    policy = spec.get("split", {}).get("policy", "stratified")
    rename = spec.get("split", {}).get("rename", {})
    if "_split_from_file" in frame.columns:
        splits = frame["_split_from_file"]
    elif policy == "table":
        column = _column(frame, spec, "split", required=True)
        splits = column
    else:
        fractions = spec["split"]["fractions"]
        if sorted(fractions) != sorted(split_names):
            raise IngestionError(f"split.fractions keys {sorted(fractions)} must be the splits {list(split_names)}")
        use_speakers = speakers if spec["split"].get("speaker_disjoint", True) else None
        return assign_splits(labels, {n: fractions[n] for n in split_names}, seed, use_speakers)
    splits = splits.map(lambda s: rename.get(s, s))
    return splits


def _check_rows_audio(paths: pd.Series, silence_peak: float, threads: int) -> dict[int, Any]:
    """Check every audio file, returning index -> AudioCheck or the AudioError message."""

    def check(item: tuple[int, str]) -> tuple[int, Any]:
        index, path = item
        try:
            return index, check_audio(path, silence_peak)
        except AudioError as error:
            return index, str(error)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return dict(pool.map(check, paths.items()))


def _finish(problems: list[tuple[int, str]], frame: pd.DataFrame, on_invalid: str) -> pd.DataFrame:
    """Raise on problems, or return them as a skip list when ``on_invalid == 'skip'``."""
    report = pd.DataFrame(
        [{"source": frame.at[i, "_source"], "row": int(frame.at[i, "_row"]), "utt_id": frame.at[i, "utt_id"],
          "reason": reason} for i, reason in problems],
        columns=["source", "row", "utt_id", "reason"],
    )
    if problems and on_invalid != "skip":
        lines = [f"{_where(frame, i)} (utt_id {frame.at[i, 'utt_id']!r}): {reason}" for i, reason in problems]
        more = len(lines) - MAX_LISTED_PROBLEMS
        text = "\n  ".join(lines[:MAX_LISTED_PROBLEMS]) + (f"\n  ... and {more} more" if more > 0 else "")
        raise IngestionError(
            f"{len(problems)} invalid row(s) (set on_invalid: skip to write them to a skip list instead):\n  {text}"
        )
    return report


def build_speech_manifest(
    spec: Mapping[str, Any], classes: Sequence[str], split_names: Sequence[str], seed: int, threads: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Validate a speech corpus and return (manifest, skipped rows, summary)."""
    frame = load_corpus_table(spec)
    audio = _column(frame, spec, "audio_path", required=True)
    audio_root = spec.get("audio_root") or os.path.dirname(str(frame["_source"].iloc[0]))
    frame["audio_path"] = [p if os.path.isabs(p) else os.path.normpath(os.path.join(audio_root, p)) for p in audio]
    utt = _column(frame, spec, "utt_id", required=False)
    frame["utt_id"] = utt if utt is not None else [Path(p).stem for p in audio]
    text = _column(frame, spec, "text", required=bool(spec.get("require_text", False)))
    frame["text"] = text if text is not None else ""
    speaker = _column(frame, spec, "speaker", required=False)
    frame["speaker"] = speaker if speaker is not None else ""
    frame["raw_label"] = _column(frame, spec, "label", required=True)
    frame["label"] = map_labels(frame["raw_label"], spec["label_map"], classes)

    problems: list[tuple[int, str]] = []
    duplicated = frame["utt_id"].duplicated(keep="first")
    problems += [(i, f"duplicate utt_id {frame.at[i, 'utt_id']!r}") for i in frame.index[duplicated]]
    problems += [(i, "empty utt_id") for i in frame.index[frame["utt_id"] == ""]]
    unknown = frame["label"] == "<unknown>"
    problems += [
        (i, f"unknown label {frame.at[i, 'raw_label']!r} (label_map knows {sorted(spec['label_map'])})")
        for i in frame.index[unknown]
    ]
    if spec.get("require_text", False):
        problems += [(i, "empty text but require_text is true") for i in frame.index[frame["text"] == ""]]
    excluded = frame["label"].isna()
    checks = _check_rows_audio(frame.loc[~excluded, "audio_path"], float(spec.get("silence_peak", 1e-4)), threads)
    problems += [(i, result) for i, result in checks.items() if isinstance(result, str)]
    problems.sort()
    skipped = _finish(problems, frame, spec.get("on_invalid", "error"))

    keep = ~excluded & ~frame.index.isin([i for i, _ in problems])
    frame = frame.loc[keep].copy()
    frame["duration_s"] = [round(checks[i].duration_s, 4) for i in frame.index]
    frame["sample_rate"] = [checks[i].sample_rate for i in frame.index]
    speakers = frame["speaker"] if speaker is not None and (frame["speaker"] != "").all() else None
    frame["split"] = resolve_splits(frame, spec, split_names, frame["label"], speakers, seed)
    _check_split_names(frame, split_names)
    summary = summarise(frame, classes, split_names)
    summary["excluded_by_label_map"] = int(excluded.sum())
    summary["skipped"] = len(skipped)
    summary["total_hours"] = round(float(frame["duration_s"].sum()) / 3600.0, 4)
    summary["hours_per_split"] = {s: round(float(frame.loc[frame["split"] == s, "duration_s"].sum()) / 3600, 4)
                                  for s in split_names}
    summary["speakers_per_split"] = {s: sorted(frame.loc[frame["split"] == s, "speaker"].unique().tolist())
                                     for s in split_names} if speakers is not None else None
    return frame.loc[:, SPEECH_COLUMNS].reset_index(drop=True), skipped, summary


def build_text_manifest(
    spec: Mapping[str, Any], classes: Sequence[str], split_names: Sequence[str], seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Validate a text corpus and return (manifest, skipped rows, summary)."""
    frame = load_corpus_table(spec)
    frame["text"] = _column(frame, spec, "text", required=True)
    utt = _column(frame, spec, "utt_id", required=False)
    frame["utt_id"] = utt if utt is not None else [f"{Path(s).stem}_{r:06d}" for s, r in zip(frame["_source"], frame["_row"])]
    frame["raw_label"] = _column(frame, spec, "label", required=True)
    frame["label"] = map_labels(frame["raw_label"], spec["label_map"], classes)
    problems: list[tuple[int, str]] = []
    problems += [(i, f"duplicate utt_id {frame.at[i, 'utt_id']!r}") for i in frame.index[frame["utt_id"].duplicated()]]
    problems += [
        (i, f"unknown label {frame.at[i, 'raw_label']!r} (label_map knows {sorted(spec['label_map'])})")
        for i in frame.index[frame["label"] == "<unknown>"]
    ]
    excluded = frame["label"].isna()
    problems += [(i, "empty text") for i in frame.index[(frame["text"] == "") & ~excluded]]
    problems.sort()
    skipped = _finish(problems, frame, spec.get("on_invalid", "error"))
    keep = ~excluded & ~frame.index.isin([i for i, _ in problems])
    frame = frame.loc[keep].copy()
    frame["split"] = resolve_splits(frame, spec, split_names, frame["label"], None, seed)
    _check_split_names(frame, split_names)
    summary = summarise(frame, classes, split_names)
    summary["excluded_by_label_map"] = int(excluded.sum())
    summary["skipped"] = len(skipped)
    return frame.loc[:, TEXT_COLUMNS].reset_index(drop=True), skipped, summary


def _check_split_names(frame: pd.DataFrame, split_names: Sequence[str]) -> None:
    unknown = sorted(set(frame["split"]) - set(split_names))
    if unknown:
        first = frame.index[frame["split"].isin(unknown)][0]
        raise IngestionError(
            f"{_where(frame, first)}: split values {unknown} are not among the configured splits "
            f"{list(split_names)} (map them with split.rename)"
        )


def summarise(frame: pd.DataFrame, classes: Sequence[str], split_names: Sequence[str]) -> dict[str, Any]:
    """Counts per split and class."""
    counts = {
        split: {label: int(((frame["split"] == split) & (frame["label"] == label)).sum()) for label in classes}
        for split in split_names
    }
    return {"utterances": len(frame), "counts": counts}


def write_outputs(
    manifest: pd.DataFrame, skipped: pd.DataFrame, summary: dict[str, Any], out_dir: str, columns: list[str],
    split_names: Sequence[str],
) -> None:
    """Write ``{out_dir}/{split}.tsv`` per split, ``skipped.tsv`` and ``summary.json``."""
    for split in split_names:
        write_manifest(manifest[manifest["split"] == split], Path(out_dir) / f"{split}.tsv", columns)
    write_manifest(skipped, Path(out_dir) / "skipped.tsv", list(skipped.columns))
    write_json(Path(out_dir) / "summary.json", summary)
    for split in split_names:
        if not (manifest["split"] == split).any():
            log.warning("split %s is empty", split)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ingest_speech_corpus and ingest_text_corpus rules."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["speech", "text"])
    parser.add_argument("--corpus-config", required=True, help="the corpus block as JSON")
    parser.add_argument("--classes", required=True, nargs="+", help="task classes, in order")
    parser.add_argument("--splits", required=True, nargs="+", help="split names to write")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args(argv)
    setup_logging()
    spec = parse_json_argument(args.corpus_config, "--corpus-config")
    seed = int(spec.get("split", {}).get("seed", args.seed))
    if args.kind == "speech":
        manifest, skipped, summary = build_speech_manifest(spec, args.classes, args.splits, seed, args.threads)
        columns = SPEECH_COLUMNS
    else:
        manifest, skipped, summary = build_text_manifest(spec, args.classes, args.splits, seed)
        columns = TEXT_COLUMNS
    write_outputs(manifest, skipped, summary, args.out_dir, columns, args.splits)
    log.info("wrote %d utterances to %s: %s", len(manifest), args.out_dir, summary["counts"])


if __name__ == "__main__":
    main()
