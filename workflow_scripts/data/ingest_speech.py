"""Speech corpus ingestion: a user's table -> a validated manifest per split, a skip list and a summary.

Besides the checks shared with text corpora (:mod:`workflow_scripts.data.ingest`), every audio
file is opened: unreadable, empty, too short (``min_duration_s``) or all-silent files are rejected
rows too (``audio_check: header``: the header alone is read, so silence and non-finite samples show
only at extraction). Every kept file's bytes are hashed (SHA-256, the manifest's ``audio_sha256``):
the same audio in two splits is an error naming both rows, within one split a warning.
"""

import itertools
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from workflow_scripts.common.audio import (
    AudioCheck,
    AudioError,
    check_audio,
    check_audio_header,
    find_unicode_variant,
)
from workflow_scripts.common.checksums import sha256_file
from workflow_scripts.common.manifest import AUDIO_SHA256, INGESTED_SPEECH_COLUMNS
from workflow_scripts.common.rule import run_rule
from workflow_scripts.data import ingest

CHECKS_PER_ROUND = 4096  # files handed to the thread pool at once: bounds its queue at any table size


def _check_rows_audio(
    paths: pd.Series, silence_peak: float, min_duration_s: float, threads: int, mode: str = "full"
) -> dict[int, AudioCheck | str]:
    """Check every audio file, returning index -> AudioCheck or the AudioError message.

    ``mode`` full reads every sample (:func:`check_audio`), header reads the header alone
    (:func:`check_audio_header`). A progress bar shows on screen only (stderr a terminal), never in logs.
    """

    def check(item: tuple[int, str]) -> tuple[int, AudioCheck | str]:
        index, path = item
        try:
            if mode == "full":
                return index, check_audio(path, silence_peak, min_duration_s)
            return index, check_audio_header(path, min_duration_s)
        except AudioError as error:
            return index, str(error)

    with tqdm(total=len(paths), unit="file", desc=f"audio check ({mode})", disable=not sys.stderr.isatty()) as bar:
        return dict(map_in_rounds(check, paths.items(), threads, bar.update))


def map_in_rounds(
    function: Callable[[Any], Any], items: Iterable[Any], threads: int, done: Callable[[int], Any] | None = None
) -> Iterator[Any]:
    """``function`` over ``items`` on ``threads`` threads, results in order, ``CHECKS_PER_ROUND`` items at
    a time (``done(count)`` after each round). ``Executor.map`` submits every item at once, a future
    each (200,000 futures: +308 MB), so hashing a million files took memory with the table."""
    items = iter(items)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        while batch := list(itertools.islice(items, CHECKS_PER_ROUND)):
            yield from pool.map(function, batch)
            if done:
                done(len(batch))


def hash_audio_files(paths: pd.Series, threads: int) -> list[str]:
    """The SHA-256 of every file's bytes (no decoding), in ``paths`` order."""
    return list(map_in_rounds(sha256_file, paths, threads))


def resolve_audio_path(path: str, audio_root: str) -> str:
    """``path`` against ``audio_root``; an existing file spelled in another Unicode form is found too."""
    if not path:
        return ""
    full = path if os.path.isabs(path) else os.path.normpath(os.path.join(audio_root, path))
    if os.path.exists(full):
        return full
    return find_unicode_variant(full) or full


def build_speech_manifest(
    spec: Mapping[str, Any],
    classes: Sequence[str],
    split_names: Sequence[str],
    seed: int,
    threads: int = 1,
    train_split: str | None = None,
    strict: bool = True,
    corpus: str = "speech",
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Validate a speech corpus and return (manifest, skipped rows, summary).

    ``train_split`` (default the first split) must hold every class; ``strict``: every split
    must hold an utterance (see :func:`ingest.check_split_minimums`).
    """
    frame = ingest.load_corpus_table(spec)
    audio = ingest.table_column(frame, spec, "audio_path", required=True)
    audio_root = spec["audio_root"] or os.path.dirname(str(frame["_source"].iloc[0]))
    frame["audio_path"] = [resolve_audio_path(p, audio_root) for p in audio]
    utt = ingest.table_column(frame, spec, "utt_id", required=False)
    frame["utt_id"] = utt if utt is not None else [Path(p).stem for p in audio]
    text = ingest.table_column(frame, spec, "text", required=spec["require_text"])
    frame["text"] = text if text is not None else ""
    speaker = ingest.table_column(frame, spec, "speaker", required=False)
    frame["speaker"] = speaker if speaker is not None else ""
    frame["raw_label"] = ingest.table_column(frame, spec, "label", required=True)
    frame["label"] = ingest.map_labels(frame["raw_label"], spec["label_map"], classes)

    problems: ingest.Problems = ingest.id_and_label_problems(frame, spec)
    problems += [(i, "empty utt_id") for i in frame.index[frame["utt_id"] == ""]]
    if spec["require_text"]:
        problems += [(i, "empty text but require_text is true") for i in frame.index[frame["text"] == ""]]
    excluded = frame["label"].isna()
    no_path = frame["audio_path"] == ""
    problems += [(i, "empty audio_path cell") for i in frame.index[no_path & ~excluded]]
    checks = _check_rows_audio(
        frame.loc[~excluded & ~no_path, "audio_path"],
        float(spec["silence_peak"]),
        float(spec["min_duration_s"]),
        threads,
        spec["audio_check"],
    )
    problems += [(i, result) for i, result in checks.items() if isinstance(result, str)]
    frame, skipped = ingest.drop_rejected(frame, problems, excluded, spec["on_invalid"])

    frame["duration_s"] = [round(checks[i].duration_s, 4) for i in frame.index]
    frame["sample_rate"] = [checks[i].sample_rate for i in frame.index]
    frame[AUDIO_SHA256] = hash_audio_files(frame["audio_path"], threads)
    disjoint = speaker is not None and ingest.uses_speaker_disjoint_split(frame, spec)
    blank_speakers = int((frame["speaker"] == "").sum()) if speaker is not None else 0
    if speaker is not None:
        frame["speaker"] = ingest.fill_blank_speakers(frame, spec, disjoint)
    speakers = frame["speaker"] if disjoint else None
    frame["split"] = ingest.resolve_splits(frame, spec, split_names, frame["label"], speakers, seed, corpus)
    ingest.check_split_names(frame, split_names)
    warnings = ingest.check_split_minimums(frame, classes, split_names, train_split or split_names[0], strict, corpus)
    warnings += ingest.check_duplicate_audio(frame, corpus)
    summary = ingest.summarise(frame, classes, split_names, int(excluded.sum()), len(skipped))
    summary["total_hours"] = round(float(frame["duration_s"].sum()) / 3600.0, 4)
    summary["hours_per_split"] = {
        s: round(float(frame.loc[frame["split"] == s, "duration_s"].sum()) / 3600, 4) for s in split_names
    }
    known = frame["speaker"] != ""
    summary["speakers_per_split"] = (
        {s: sorted(frame.loc[(frame["split"] == s) & known, "speaker"].unique().tolist()) for s in split_names}
        if speaker is not None
        else None
    )
    summary["speaker_disjoint"] = disjoint
    summary["rows_without_speaker"] = blank_speakers
    ingest.report_warnings(summary, warnings)
    return frame.loc[:, INGESTED_SPEECH_COLUMNS].reset_index(drop=True), skipped, summary


def main(job: Any) -> None:
    """Entry point of the ingest_speech_corpus rule (``job``: the rule's ``snakemake`` object).

    ``params.corpus`` is the corpus block (its ``split.seed`` filled in by the config validation),
    ``params.train_split`` the training split, ``params.strict`` whether every split must hold
    utterances (the emotion corpus; a corpus used only for ASR training may leave splits empty).
    """
    spec, splits = job.params.corpus, list(job.params.splits)
    seed = int(spec["split"]["seed"])
    manifest, skipped, summary = build_speech_manifest(
        spec,
        job.params.classes,
        splits,
        seed,
        job.threads,
        train_split=job.params.get("train_split"),
        strict=bool(job.params.get("strict", True)),
        corpus=job.wildcards.get("corpus", "speech"),
    )
    manifest_paths = dict(zip(splits, job.output.manifests, strict=True))
    ingest.write_outputs(
        manifest, skipped, summary, INGESTED_SPEECH_COLUMNS, manifest_paths, job.output.skipped, job.output.summary
    )


if __name__ == "__main__":
    run_rule(main)
