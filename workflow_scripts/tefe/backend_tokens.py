"""Token states of a text backend (rule extract_tefe_backend_tokens; names.TEFE_TOKEN_BACKENDS).

The sequence contract (:mod:`workflow_scripts.common.sequences`) for the neural fusion heads,
like extract_tefe_tokens for the paper's encoders: per utterance of a speech split, the
``(tokens, hidden)`` matrix of the backend's token states (the transformer's last hidden states
at the attention mask's positions) of its ASR hypothesis, keyed by utt_id, in manifest order.
Every matrix has at least one row (the tokenizer's special tokens; an empty text included).
"""

import logging
from typing import Any

from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.sequences import SequenceWriter
from workflow_scripts.tefe.backends import load_text_backend
from workflow_scripts.tefe.extract import read_transcript_texts

log = logging.getLogger(__name__)


def extract_backend_tokens(
    name: str,
    model_dir: str,
    transcripts: str,
    column: str,
    out: str,
    batch_size: int,
    manifest: str | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Write the token-state matrices of one split from backend ``name``; returns the metadata."""
    backend = load_text_backend(name, model_dir, threads)
    if not hasattr(backend, "token_states"):
        raise ValueError(f"TEFE backend {name!r} has no token states (backends with them: the transformer)")
    frame = read_transcript_texts(transcripts, column, manifest)
    texts, utt_ids = frame["text"].tolist(), frame["utt_id"].tolist()
    info = backend.metadata()
    metadata = {
        "model": info["model"],
        "backend": name,
        "checkpoint": model_dir,
        "pretrained": info.get("pretrained"),
        "token_states": info.get("token_states"),
        "source": {"transcripts": transcripts, "column": column},
    }
    with SequenceWriter(out, backend.feature_dim, "tokens", metadata) as writer:
        for start in range(0, len(texts), batch_size):
            writer.write(utt_ids[start : start + batch_size], backend.token_states(texts[start : start + batch_size]))
    log.info("%s: token states of %d utterances, %s, width %d", out, len(frame), name, backend.feature_dim)
    return metadata


def main(job: Any) -> None:
    """Entry point of the extract_tefe_backend_tokens rule (``job``: the rule's ``snakemake`` object)."""
    extract_backend_tokens(
        job.wildcards.backend,
        str(job.input.model),
        str(job.input.transcripts),
        job.params.column,
        str(job.output.tokens),
        int(job.params.batch_size),
        str(job.input.manifest),
        job.threads,
    )


if __name__ == "__main__":
    run_rule(main)
