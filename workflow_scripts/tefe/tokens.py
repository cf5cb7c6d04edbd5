"""TEFE token sequences (rule extract_tefe_tokens): the selected encoder's token states per utterance.

What extract_tefe pools into mean / var / max / min (workflow_scripts.tefe.extract), written
before pooling in the sequence contract (workflow_scripts.common.sequences): per utterance of a
speech split, the ``(tokens, dim)`` matrix of the encoder's last sequence layer at the real
(non-padding) positions of its ASR hypothesis, for the neural fusion heads. Texts without any
token are encoded as one <UNK>, so every matrix has at least one row.
"""

import logging
import os
from collections.abc import Mapping
from typing import Any

import torch

from workflow_scripts.common.devices import resolve_device
from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.sequences import SequenceWriter
from workflow_scripts.tefe.extract import TOKEN_STATES, file_sha256, read_transcript_texts
from workflow_scripts.tefe.models import batch_indices, load_encoder

log = logging.getLogger(__name__)


@torch.no_grad()
def extract_tokens(
    model_path: str,
    vocab_path: str,
    transcripts: str,
    column: str,
    out: str | os.PathLike,
    config: Mapping[str, Any],
    manifest: str | None = None,
) -> dict[str, Any]:
    """Write the token-state matrices of one split's transcripts to ``out``; returns the metadata."""
    model, vocab, header = load_encoder(model_path, vocab_path)
    device = resolve_device(config.get("device", "auto"))
    model.to(device).eval()
    frame = read_transcript_texts(transcripts, column, manifest)
    arch = header["arch"]
    metadata = dict(model=f"tefe/{arch}", architecture=arch, checkpoint=model_path, vocabulary=vocab_path)
    metadata.update(checkpoint_sha256=file_sha256(model_path), token_states=TOKEN_STATES[arch])
    metadata["source"] = {"transcripts": transcripts, "column": column}
    ids, lengths = vocab.encode(frame["text"].tolist())
    ids_t, lengths_t = torch.from_numpy(ids), torch.from_numpy(lengths)
    utt_ids = frame["utt_id"].tolist()
    with SequenceWriter(out, model.feature_dim, "tokens", metadata) as writer:
        for rows in batch_indices(len(frame), int(config.get("batch_size", 256))):
            n = lengths_t[rows]
            _, states, _ = model.encode(ids_t[rows, : int(n.max())].to(device), n.to(device))
            states = states.float().cpu().numpy()
            writer.write([utt_ids[int(r)] for r in rows], [states[i, : int(n[i])] for i in range(len(rows))])
    log.info("%s: token states of %d utterances, %s, width %d", out, len(frame), arch, model.feature_dim)
    return metadata


def main(job: Any) -> None:
    """Entry point of the extract_tefe_tokens rule (one split; ``job``: the rule's ``snakemake`` object)."""
    torch.set_num_threads(job.threads)
    files = {key: str(job.input[key]) for key in ("model", "vocab", "transcripts", "manifest")}
    extract_tokens(
        files["model"],
        files["vocab"],
        files["transcripts"],
        job.params.column,
        job.output.tokens,
        job.params.extract,
        manifest=files["manifest"],
    )


if __name__ == "__main__":
    run_rule(main)
