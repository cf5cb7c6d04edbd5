"""The extract_prosody_tokens rule (one split): F0 file + the training split's bins -> token ids per frame.

Kind ``tokens``, dim 1, the id as a float32 (:func:`workflow_scripts.sefe.prosody.quantize`): 0 is
the unvoiced token, voiced frames get ``1 + bin`` (1 .. ``bins``); values beyond the training
range fall into the end bins. The vocabulary (``bins + 1``) and the edges file are recorded in
the metadata.
"""

import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from workflow_scripts.common.files import read_json
from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.sequences import SequenceFile, SequenceWriter
from workflow_scripts.sefe.prosody import UNVOICED, quantize

log = logging.getLogger(__name__)


def write_tokens(
    f0_path: str | os.PathLike, quantizer: Mapping[str, Any], output: str | os.PathLike, bins_path: str
) -> dict[str, Any]:
    """Token files of one split from its F0 file and the training split's quantizer."""
    f0 = SequenceFile(f0_path)
    metadata = {
        "model": "prosody tokens",
        "checkpoint": "none (weights-free)",
        "vocabulary_size": int(quantizer["vocabulary_size"]),
        "unvoiced_id": UNVOICED,
        "bins": int(quantizer["bins"]),
        "method": quantizer["method"],
        "bins_file": str(bins_path),
        "frame_rate_hz": f0.metadata.get("frame_rate_hz"),
        "split": f0.metadata.get("split"),
    }
    counts = np.zeros(int(quantizer["vocabulary_size"]), dtype=np.int64)
    with SequenceWriter(output, 1, "tokens", metadata) as writer:
        for start in range(0, len(f0), 256):
            positions = np.arange(start, min(start + 256, len(f0)))
            tokens = [quantize(m, quantizer) for m in f0.read(positions)]
            counts += np.bincount(np.concatenate(tokens), minlength=len(counts))
            writer.write([f0.utt_ids[p] for p in positions], [t[:, None].astype(np.float32) for t in tokens])
    figures = {"utterances": len(f0), "unvoiced_share": round(float(counts[0] / max(1, counts.sum())), 4)}
    figures["bins_used"] = int((counts[1:] > 0).sum())
    log.info("wrote %s: %s", output, figures)
    return figures


def main(job: Any) -> None:
    """Entry point of the extract_prosody_tokens rule (``job``: the rule's ``snakemake`` object)."""
    write_tokens(job.input.f0, read_json(job.input.bins), job.output.tokens, str(job.input.bins))


if __name__ == "__main__":
    run_rule(main)
