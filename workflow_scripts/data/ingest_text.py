"""Text corpus ingestion: a user's table -> a validated manifest per split, a skip list and a summary."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from workflow_scripts.common.manifest import TEXT_COLUMNS
from workflow_scripts.common.rule import run_rule
from workflow_scripts.data import ingest

TEXT_CORPUS = "text_corpus"  # the config key, naming the corpus in messages


def build_text_manifest(
    spec: Mapping[str, Any], classes: Sequence[str], split_names: Sequence[str], seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Validate a text corpus and return (manifest, skipped rows, summary).

    Every split needs an utterance, the first (training) split every class. A sentence (normalised) of
    the training split that is also in another split is a warning with the count per split.
    """
    frame = ingest.load_corpus_table(spec)
    frame["text"] = ingest.table_column(frame, spec, "text", required=True)
    utt = ingest.table_column(frame, spec, "utt_id", required=False)
    frame["utt_id"] = (
        utt
        if utt is not None
        else [f"{Path(s).stem}_{r:06d}" for s, r in zip(frame["_source"], frame["_row"], strict=True)]
    )
    frame["raw_label"] = ingest.table_column(frame, spec, "label", required=True)
    frame["label"] = ingest.map_labels(frame["raw_label"], spec["label_map"], classes)
    problems: ingest.Problems = ingest.id_and_label_problems(frame, spec)
    excluded = frame["label"].isna()
    problems += [(i, "empty text") for i in frame.index[(frame["text"] == "") & ~excluded]]
    frame, skipped = ingest.drop_rejected(frame, problems, excluded, spec["on_invalid"])
    frame["split"] = ingest.resolve_splits(frame, spec, split_names, frame["label"], None, seed, TEXT_CORPUS)
    ingest.check_split_names(frame, split_names)
    warnings = ingest.check_split_minimums(frame, classes, split_names, split_names[0], True, TEXT_CORPUS)
    warnings += ingest.shared_sentence_warnings(frame, split_names[0], TEXT_CORPUS)
    summary = ingest.summarise(frame, classes, split_names, int(excluded.sum()), len(skipped))
    ingest.report_warnings(summary, warnings)
    return frame.loc[:, TEXT_COLUMNS].reset_index(drop=True), skipped, summary


def main(job: Any) -> None:
    """Entry point of the ingest_text_corpus rule (``job``: the rule's ``snakemake`` object).

    ``params.corpus`` is the text_corpus block (its ``split.seed`` filled in by the config validation).
    """
    spec, splits = job.params.corpus, list(job.params.splits)
    manifest, skipped, summary = build_text_manifest(spec, job.params.classes, splits, int(spec["split"]["seed"]))
    manifest_paths = dict(zip(splits, job.output.manifests, strict=True))
    ingest.write_outputs(
        manifest, skipped, summary, TEXT_COLUMNS, manifest_paths, job.output.skipped, job.output.summary
    )


if __name__ == "__main__":
    run_rule(main)
