"""Text features of transcripts from a text backend (rule extract_tefe_backend; tefe.backend).

Like extract_tefe for the paper's encoders: for each utterance of a speech split (its ASR
hypothesis, or its reference transcript) the fitted backend's features are written through
:class:`workflow_scripts.common.features.FeatureWriter`, keyed by utt_id, with metadata naming
the backend, its model directory and what each statistic is.
"""

import logging
from typing import Any

from workflow_scripts.common.features import FeatureWriter
from workflow_scripts.common.rule import run_rule
from workflow_scripts.tefe.backends import load_text_backend
from workflow_scripts.tefe.extract import read_transcript_texts

log = logging.getLogger(__name__)


def extract_backend_features(
    name: str,
    model_dir: str,
    transcripts: str,
    column: str,
    out: str,
    batch_size: int,
    manifest: str | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Write the feature file of one split from backend ``name``; returns its metadata."""
    backend = load_text_backend(name, model_dir, threads)
    frame = read_transcript_texts(transcripts, column, manifest)
    texts = frame["text"].tolist()
    metadata = {
        **backend.metadata(),
        "backend": name,
        "checkpoint": model_dir,
        "source": {"transcripts": transcripts, "column": column},
        "empty_texts": int(sum(1 for t in texts if not t.strip())),
    }
    with FeatureWriter(out, list(backend.statistics), backend.feature_dim, metadata) as writer:
        for start in range(0, len(texts), batch_size):
            rows = slice(start, start + batch_size)
            writer.write(frame["utt_id"].iloc[rows].tolist(), backend.features(texts[rows]))
    log.info("%s: %d utterances, %s features of width %d (%s)", out, len(frame), name, backend.feature_dim, column)
    return metadata


def main(job: Any) -> None:
    """Entry point of the extract_tefe_backend rule (``job``: the rule's ``snakemake`` object)."""
    extract_backend_features(
        job.wildcards.backend,
        str(job.input.model),
        str(job.input.transcripts),
        job.params.column,
        str(job.output.features),
        int(job.params.batch_size),
        str(job.input.manifest),
        job.threads,
    )


if __name__ == "__main__":
    run_rule(main)
