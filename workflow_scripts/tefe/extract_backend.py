"""Text features of transcripts from a text backend (rule extract_tefe_backend; tefe.backend).

Like extract_tefe for the paper's encoders: for each utterance of a speech split (its ASR
hypothesis, or its reference transcript) the fitted backend's features are written through
:class:`workflow_scripts.common.features.FeatureWriter`, keyed by utt_id, with metadata naming
the backend, its model directory and what each statistic is. With ``kind="tokens"`` (rule
extract_tefe_backend_tokens, :mod:`workflow_scripts.tefe.backend_tokens`) the backend's token
states are written instead, through :class:`workflow_scripts.common.sequences.SequenceWriter`.
"""

import logging
from typing import Any

from workflow_scripts.common.features import FeatureWriter
from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.sequences import SequenceWriter
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
    kind: str = "features",
) -> dict[str, Any]:
    """Write the feature file (``kind`` features) or the token-state sequence file (``kind`` tokens) of
    one split from backend ``name``, in manifest order; returns its metadata."""
    backend = load_text_backend(name, model_dir, threads)
    if kind == "tokens" and not hasattr(backend, "token_states"):
        raise ValueError(f"TEFE backend {name!r} has no token states (backends with them: the transformer)")
    frame = read_transcript_texts(transcripts, column, manifest)
    texts, utt_ids = frame["text"].tolist(), frame["utt_id"].tolist()
    metadata = {
        **backend.metadata(),
        "backend": name,
        "checkpoint": model_dir,
        "source": {"transcripts": transcripts, "column": column},
        "empty_texts": int(sum(1 for t in texts if not t.strip())),
    }
    if kind == "tokens":
        writer, encode = SequenceWriter(out, backend.feature_dim, "tokens", metadata), backend.token_states
    else:
        writer, encode = FeatureWriter(out, list(backend.statistics), backend.feature_dim, metadata), backend.features
    with writer:
        for start in range(0, len(texts), batch_size):
            writer.write(utt_ids[start : start + batch_size], encode(texts[start : start + batch_size]))
    log.info("%s: %d utterances, %s %s of width %d (%s)", out, len(frame), name, kind, backend.feature_dim, column)
    return metadata


def job_arguments(job: Any, output: str) -> tuple[Any, ...]:
    """The arguments of :func:`extract_backend_features` from a rule's job (``output``: features or tokens)."""
    inputs = [str(job.input[key]) for key in ("model", "transcripts")]
    return (
        job.wildcards.backend,
        *inputs,
        job.params.column,
        str(job.output[output]),
        int(job.params.batch_size),
        str(job.input.manifest),
        job.threads,
        output,
    )


def main(job: Any) -> None:
    """Entry point of the extract_tefe_backend rule (``job``: the rule's ``snakemake`` object)."""
    extract_backend_features(*job_arguments(job, "features"))


if __name__ == "__main__":
    run_rule(main)
