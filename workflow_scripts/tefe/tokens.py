"""TEFE token sequences (rule extract_tefe_tokens): the selected encoder's token states per utterance.

What extract_tefe pools into mean / var / max / min (workflow_scripts.tefe.extract), written
before pooling in the sequence contract (workflow_scripts.common.sequences): per utterance of a
speech split, the ``(tokens, dim)`` matrix of the encoder's last sequence layer at the real
(non-padding) positions of its ASR hypothesis, for the neural fusion heads. Texts without any
token are encoded as one <UNK>, so every matrix has at least one row.
"""

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from workflow_scripts.common.devices import resolve_device
from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.sequences import SequenceWriter
from workflow_scripts.tefe.extract import (
    TOKEN_STATES,
    encoded_batches,
    file_sha256,
    load_selected_encoder,
    read_transcript_texts,
)
from workflow_scripts.tefe.models import TextEncoder, load_encoder
from workflow_scripts.tefe.text import Vocabulary

log = logging.getLogger(__name__)


@torch.no_grad()
def token_states(
    model: TextEncoder, vocab: Vocabulary, texts: Sequence[str], batch_size: int, device: torch.device
) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """(row indices, token-state matrices at the real positions) of ``texts``, batch by batch."""
    for rows, x, n in encoded_batches(vocab, texts, batch_size):
        _, states, _ = model.encode(x.to(device), n.to(device))
        states = states.float().cpu().numpy()
        yield [int(r) for r in rows], [states[i, : int(n[i])] for i in range(len(rows))]


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
    device = resolve_device(config["device"])
    model.to(device).eval()
    frame = read_transcript_texts(transcripts, column, manifest)
    arch = header["arch"]
    metadata = dict(model=f"tefe/{arch}", architecture=arch, checkpoint=model_path, vocabulary=vocab_path)
    metadata.update(checkpoint_sha256=file_sha256(model_path), token_states=TOKEN_STATES[arch])
    metadata["source"] = {"transcripts": transcripts, "column": column}
    utt_ids = frame["utt_id"].tolist()
    with SequenceWriter(out, model.feature_dim, "tokens", metadata) as writer:
        for rows, matrices in token_states(model, vocab, frame["text"].tolist(), int(config["batch_size"]), device):
            writer.write([utt_ids[r] for r in rows], matrices)
    log.info("%s: token states of %d utterances, %s, width %d", out, len(frame), arch, model.feature_dim)
    return metadata


def load_token_encoder(config: Mapping[str, Any], run_dir: str | os.PathLike, threads: int):
    """predict's token states for the neural heads: ``encode(transcripts) -> [matrix (tokens, dim)]``
    with the run's selected encoder, as extract_tefe_tokens writes them."""
    torch.set_num_threads(max(1, threads))
    model, vocab, block, device = load_selected_encoder(config, run_dir)

    def encode(texts: Sequence[str]) -> list[np.ndarray]:
        out: list[np.ndarray] = [np.zeros(0)] * len(texts)
        for rows, matrices in token_states(model, vocab, list(texts), int(block["batch_size"]), device):
            for row, matrix in zip(rows, matrices, strict=True):
                out[row] = matrix
        return out

    return encode


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
