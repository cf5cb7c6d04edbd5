"""Text features of transcripts from the selected TEFE encoder (rule extract_tefe).

For each utterance of a speech split (its ASR hypothesis, or its reference transcript to
measure the effect of recognition errors) the encoder gives:

* ``sentence``: the layer before the output (the paper's text feature), and
* ``mean`` / ``var`` / ``max`` / ``min``: statistics over the encoder's token states (its last
  sequence layer, at non-padding positions; see :mod:`workflow_scripts.tefe.models`), the
  same width. ``var`` is the population variance (0 for a one-token text).

The text preparation and vocabulary come from the model's own ``vocab.json``, so transcripts
are prepared exactly as the training texts were. Written with
:class:`workflow_scripts.common.features.FeatureWriter` (utt_id + one 1024-d float32 column per
statistic, metadata naming the architecture and checkpoint).
"""

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from workflow_scripts.asr.transcripts import read_transcripts
from workflow_scripts.common import names, paths
from workflow_scripts.common.devices import resolve_device
from workflow_scripts.common.features import FeatureWriter
from workflow_scripts.common.files import read_json
from workflow_scripts.common.manifest import read_manifest_columns
from workflow_scripts.common.memory import fix_malloc_mmap_threshold
from workflow_scripts.common.rule import run_rule
from workflow_scripts.tefe.backends import load_text_backend
from workflow_scripts.tefe.models import STATISTICS, TextEncoder, batch_indices, load_encoder, token_statistics
from workflow_scripts.tefe.text import Vocabulary, tokenize

log = logging.getLogger(__name__)

# The transcript columns the feature sets are extracted from (ASR hypothesis, reference).
TRANSCRIPT_COLUMNS = tuple(names.TEFE_FEATURE_SETS.values())
TOKEN_STATES = {
    "CNN": "the four Conv1D branches after BatchNorm and ReLU, concatenated (one row per window start)",
    "LSTM": "the LSTM outputs",
    "BiLSTM": "the BiLSTM outputs (forward and backward concatenated)",
    "BiLSTM_CNN": "the four Conv1D branches over the BiLSTM outputs, after BatchNorm and ReLU, concatenated",
}
SENTENCE = {
    "CNN": "global max pooling of the token states (so sentence equals max)",
    "LSTM": "the final hidden state at the last token",
    "BiLSTM": "the final forward state (last token) and final backward state (first token), concatenated",
    "BiLSTM_CNN": "global max pooling of the token states (so sentence equals max)",
}


def read_transcript_texts(
    path: str | os.PathLike, column: str, manifest: str | os.PathLike | None = None
) -> pd.DataFrame:
    """utt_id and ``text`` (the chosen transcript column) of a transcripts parquet file.

    On top of the contract checks of :func:`workflow_scripts.asr.transcribe.read_transcripts`,
    checks string values and, given the split's manifest, that the transcripts cover exactly its
    utterances (joined by utt_id). Returned in manifest order.
    """
    if column not in TRANSCRIPT_COLUMNS:
        raise ValueError(f"transcript column {column!r}, expected one of {TRANSCRIPT_COLUMNS}")
    frame = read_transcripts(path).loc[:, ["utt_id", column]].rename(columns={column: "text"})
    frame["utt_id"] = frame["utt_id"].astype(str)
    bad = frame["utt_id"][~frame["text"].map(lambda v: isinstance(v, str))].tolist()
    if bad:
        raise ValueError(
            f"{path}: column {column!r} is not a string (null?) for utt_id {bad[:5]}; "
            "expected a transcript, possibly empty"
        )
    if manifest is not None:
        ids = read_manifest_columns(manifest, ["utt_id"]).column("utt_id").to_pylist()
        absent = sorted(set(ids) - set(frame["utt_id"]))
        extra = sorted(set(frame["utt_id"]) - set(ids))
        if absent or extra:
            raise ValueError(
                f"{path}: transcripts do not match the utterances of {manifest}: "
                f"{len(absent)} missing (e.g. {absent[:3]}), {len(extra)} unknown (e.g. {extra[:3]})"
            )
        frame = frame.set_index("utt_id").loc[ids].reset_index()
    return frame.reset_index(drop=True)


def encoded_batches(
    vocab: Vocabulary, texts: Sequence[str], batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(row indices, token ids cut to the batch's longest text, lengths) of ``texts``, batch by batch.

    Encoded as the batches come: the split's whole (n, max_length) int64 id matrix grows with the
    corpus (100 MB at 64,000 texts of the paper's 200 tokens)."""
    for rows in batch_indices(len(texts), batch_size):
        ids, lengths = vocab.encode([texts[i] for i in rows.tolist()])
        n = torch.from_numpy(lengths)
        yield rows, torch.from_numpy(np.ascontiguousarray(ids[:, : int(n.max())])), n


@torch.no_grad()
def text_features(
    model: TextEncoder, vocab: Vocabulary, texts: Sequence[str], batch_size: int, device: torch.device
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Yield (row indices, statistics) batches for ``texts``: sentence + token statistics, float32."""
    model.eval()
    for rows, x, n in encoded_batches(vocab, texts, batch_size):
        sentence, states, mask = model.encode(x.to(device), n.to(device))
        stats = {"sentence": sentence, **token_statistics(states, mask)}
        yield rows.numpy(), {k: v.float().cpu().numpy() for k, v in stats.items()}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (names the exact checkpoint in feature metadata)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extract_features(
    model_path: str,
    vocab_path: str,
    transcripts: str,
    column: str,
    out: str,
    config: Mapping[str, Any],
    manifest: str | None = None,
) -> dict[str, Any]:
    """Write the feature file of one split; returns its metadata."""
    model, vocab, header = load_encoder(model_path, vocab_path)
    device = resolve_device(config["device"])
    model.to(device)
    frame = read_transcript_texts(transcripts, column, manifest)
    texts = frame["text"].tolist()
    arch = header["arch"]
    metadata = {
        "model": f"tefe/{arch}",
        "architecture": arch,
        "checkpoint": model_path,
        "checkpoint_sha256": file_sha256(model_path),
        "vocabulary": vocab_path,
        "preprocessing": {**vocab.settings, "vocabulary_size": len(vocab), "embedding": header["embedding_shape"]},
        "source": {"transcripts": transcripts, "column": column},
        "sentence": SENTENCE[arch],
        "token_states": TOKEN_STATES[arch],
        # Texts without any token are encoded as one <UNK> (see Vocabulary.encode).
        "empty_texts": int(sum(1 for t in texts if not tokenize(t, vocab.settings))),
    }
    with FeatureWriter(out, list(STATISTICS), model.feature_dim, metadata) as writer:
        for rows, stats in text_features(model, vocab, texts, int(config["batch_size"]), device):
            writer.write(frame["utt_id"].iloc[rows].tolist(), stats)
    log.info(
        "%s: %d utterances, %s features of width %d from %s (%s)",
        out,
        len(frame),
        arch,
        model.feature_dim,
        transcripts,
        column,
    )
    return metadata


def load_selected_encoder(
    config: Mapping[str, Any], run_dir: str | os.PathLike
) -> tuple[TextEncoder, Vocabulary, Mapping[str, Any], torch.device]:
    """predict's view of a run's TEFE stage: the encoder select_tefe chose (eval mode, on the
    tefe.extract device), its vocabulary, the tefe.extract block and the device."""
    selection = paths.in_run(paths.TEFE_SELECTION, run_dir)
    if not selection.exists():
        raise SystemExit(f"predict: {selection} not found; is {run_dir} the results directory of a finished run?")
    arch = read_json(selection)["selected"]
    model, vocab, _ = load_encoder(
        paths.in_run(paths.TEFE_MODEL, run_dir, arch=arch), paths.in_run(paths.TEFE_MODEL_VOCAB, run_dir, arch=arch)
    )
    block = config["tefe"]["extract"]
    device = resolve_device(block["device"])
    return model.to(device).eval(), vocab, block, device


def load_featurizer(config: Mapping[str, Any], run_dir: str | os.PathLike, threads: int):
    """predict's TEFE stage: ``featurize(transcripts) -> {statistic: (n, dim)}`` with the selected encoder
    (or, with tefe.backend tfidf, that backend's fitted model)."""
    torch.set_num_threads(max(1, threads))
    backend_name = config["tefe"]["backend"]
    if backend_name != "neural":
        directory = paths.in_run(paths.TEFE_BACKEND_MODEL, run_dir, backend=backend_name)
        if not directory.exists():
            raise SystemExit(f"predict: {directory} not found; is {run_dir} the results directory of a finished run?")
        backend = load_text_backend(backend_name, directory, threads)
        return lambda texts: backend.features(list(texts))
    model, vocab, block, device = load_selected_encoder(config, run_dir)

    def featurize(texts: Sequence[str]) -> dict[str, np.ndarray]:
        out = {s: np.zeros((len(texts), model.feature_dim), np.float32) for s in STATISTICS}
        for rows, stats in text_features(model, vocab, list(texts), int(block["batch_size"]), device):
            for name in STATISTICS:
                out[name][rows] = stats[name]
        return out

    return featurize


def main(job: Any) -> None:
    """Entry point of the extract_tefe rule (one split and feature set; ``job``: the rule's ``snakemake`` object)."""
    fix_malloc_mmap_threshold()  # batches of encoder states otherwise fragment the heap: RSS grew with the split
    torch.set_num_threads(job.threads)
    extract_features(
        str(job.input.model),
        str(job.input.vocab),
        str(job.input.transcripts),
        job.params.column,
        str(job.output.features),
        job.params.extract,
        str(job.input.manifest),
    )


if __name__ == "__main__":
    run_rule(main)
