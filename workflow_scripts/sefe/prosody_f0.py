"""The extract_prosody_f0 rule (one split): F0 and voicing per frame of every utterance.

Tracked as :mod:`workflow_scripts.sefe.prosody` describes (``sefe.prosody.f0`` on the waveform as
``sefe.preprocessing`` makes it) and written in the sequence contract
(:mod:`workflow_scripts.common.sequences`, kind ``frames``, dim 2: ``f0_hz`` (0 where unvoiced)
and ``voiced`` (0 / 1)).
"""

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from workflow_scripts.common.manifest import AudioItems
from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.sequences import SequenceWriter
from workflow_scripts.sefe.extract import tune_process
from workflow_scripts.sefe.preprocess import Preprocessing
from workflow_scripts.sefe.prosody import f0_matrices, tracker_checkpoint

log = logging.getLogger(__name__)


def extract_f0(
    manifest_path: str | os.PathLike,
    output: str | os.PathLike,
    cfg: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
    split: str | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """F0 and voicing of every utterance of a manifest, written as (frames, 2) matrices.

    ``threads``: torch threads of the crepe tracker (librosa's trackers run on one).
    """
    if cfg["tracker"] == "crepe":
        import torch

        torch.set_num_threads(max(1, threads))
    settings = Preprocessing.from_config(preprocessing)
    items = AudioItems(manifest_path)
    metadata = {
        "model": f"prosody f0 ({cfg['tracker']})",
        "checkpoint": tracker_checkpoint(cfg),
        "columns": ["f0_hz", "voiced"],
        "frame_rate_hz": 1000.0 / float(cfg["hop_length_ms"]),
        "f0": dict(cfg),
        "preprocessing": settings.as_metadata(),
        "split": split,
    }
    started, frames, voiced_frames = time.perf_counter(), 0, 0
    with SequenceWriter(output, 2, "frames", metadata) as writer:
        for batch, matrices in f0_matrices(items, settings, cfg):
            frames += sum(len(m) for m in matrices)
            voiced_frames += int(sum(m[:, 1].sum() for m in matrices))
            writer.write([u for u, _ in batch], matrices)
    figures = {
        "utterances": len(items),
        "frames": frames,
        "voiced_frames": voiced_frames,
        "seconds": round(time.perf_counter() - started, 3),
    }
    log.info("wrote %s: %s", output, figures)
    return figures


def main(job: Any) -> None:
    """Entry point of the extract_prosody_f0 rule (``job``: the rule's ``snakemake`` object)."""
    tune_process()  # before crepe imports torch: passive OpenMP waiting on a shared CPU
    extract_f0(
        job.input.manifest, job.output.f0, job.params.f0, job.params.preprocessing, job.wildcards.split, job.threads
    )


if __name__ == "__main__":
    run_rule(main)
