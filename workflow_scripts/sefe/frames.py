"""SEFE frame sequences (rule extract_sefe_frames): one split's manifest -> per-utterance frame matrices.

The same backend and preprocessing as extract_sefe (workflow_scripts.sefe.extract), but the
frame matrix of each utterance is written as it is, before pooling, in the sequence contract
(workflow_scripts.common.sequences), for the neural fusion heads. Streamed in chunks of the
backend's ``batch_size``: the weights-free backend in ``threads`` forked worker processes, the
model backends in this process; one row group of matrices is in memory at a time.
"""

import logging
import multiprocessing
import os
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from workflow_scripts.common.manifest import AudioItems
from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.sequences import SequenceWriter
from workflow_scripts.common.vad import VadTally
from workflow_scripts.sefe.backends import Backend
from workflow_scripts.sefe.extract import (
    _WORKER,
    Item,
    _init_worker,
    build_extractor,
    chunked,
    feature_metadata,
    load_chunk_tallied,
    ordered_map,
    tune_process,
)
from workflow_scripts.sefe.layer_choice import job_block, run_block
from workflow_scripts.sefe.preprocess import Preprocessing

log = logging.getLogger(__name__)


def checked_frames(backend: Backend, items: Sequence[Item], waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The backend's (frames, dim) matrices of ``waveforms``; a wrong shape names the utterance."""
    frames = backend.frames(waveforms)
    for (utt_id, path), matrix in zip(items, frames, strict=True):
        if matrix.ndim != 2 or matrix.shape[1] != backend.dim or matrix.shape[0] == 0:
            raise ValueError(
                f"utt_id {utt_id!r} ({path}): backend {backend.name} returned frames of shape "
                f"{matrix.shape}, expected (frames >= 1, {backend.dim})"
            )
    return [np.asarray(m, dtype=np.float32) for m in frames]


def _frames_in_worker(items: list[Item]) -> tuple[list[Item], list[np.ndarray], VadTally]:
    return _frames_of(_WORKER["backend"], _WORKER["settings"], items)


def frame_chunks(
    backend: Backend, settings: Preprocessing, items: Collection[Item], batch_size: int, workers: int
) -> Iterator[tuple[list[Item], list[np.ndarray], VadTally]]:
    """(items, frame matrices, what the VAD removed) chunk by chunk, in manifest order (forked workers as
    extract_sefe's)."""
    parallel = backend.process_parallel and workers > 1 and len(items) > batch_size
    if not parallel:
        if backend.process_parallel:
            _init_worker(backend, settings)
        yield from (_frames_of(backend, settings, batch) for batch in chunked(items, batch_size))
        return
    pool = multiprocessing.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(backend, settings))
    with pool:
        yield from ordered_map(pool, _frames_in_worker, chunked(items, batch_size), ahead=2 * workers)


def _frames_of(
    backend: Backend, settings: Preprocessing, batch: list[Item]
) -> tuple[list[Item], list[np.ndarray], VadTally]:
    waveforms, vad = load_chunk_tallied(batch, settings)
    return batch, checked_frames(backend, batch, waveforms), vad


def extract_frames(
    manifest_path: str | os.PathLike,
    output: str | os.PathLike,
    backend_name: str,
    backend_cfg: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
    *,
    split: str | None = None,
    threads: int = 1,
    layer_choice: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the frame matrices of every utterance of ``manifest_path`` to ``output`` with backend
    ``backend_name`` (its block ``backend_cfg``) after ``preprocessing``, as extract_sefe; returns figures."""
    threads = max(1, threads)
    backend, settings = build_extractor(backend_name, backend_cfg, preprocessing, threads)
    items = AudioItems(manifest_path)
    metadata = feature_metadata(backend, settings, backend_cfg, split, layer_choice)
    metadata["pooling"] = None  # frames as the backend gives them
    started = time.perf_counter()
    frames = 0
    vad = VadTally()
    with SequenceWriter(output, backend.dim, "frames", metadata) as writer:
        for batch, matrices, tally in frame_chunks(backend, settings, items, int(backend_cfg["batch_size"]), threads):
            writer.write([u for u, _ in batch], matrices)
            frames += sum(len(m) for m in matrices)
            vad.merge(tally)
    if settings.vad_enabled:
        log.info(vad.describe(str(split)))
    figures = {
        "utterances": len(items),
        "frames": frames,
        "dim": backend.dim,
        "seconds": round(time.perf_counter() - started, 3),
    }
    log.info("wrote %s: %s", output, figures)
    return figures


def load_frame_extractor(config: Mapping[str, Any], run_dir: str | os.PathLike, threads: int):
    """predict's frames for the neural heads: ``frames(audio_paths) -> [matrix (frames, dim)]`` with the
    configured backend and preprocessing, as extract_sefe_frames writes them."""
    sefe = config["sefe"]
    name = sefe["backend"]
    block, _ = run_block(config, name, run_dir)
    backend, settings = build_extractor(name, block, sefe["preprocessing"], threads)

    def frames(audio_paths: Sequence[str]) -> list[np.ndarray]:
        items = [(str(index), str(path)) for index, path in enumerate(audio_paths)]
        out: list[np.ndarray] = []
        for _, matrices, _ in frame_chunks(backend, settings, items, int(block["batch_size"]), 1):
            out += matrices
        return out

    return frames


def main(job: Any) -> None:
    """Entry point of the extract_sefe_frames rule (``job``: the rule's ``snakemake`` object)."""
    tune_process()
    backend = job.wildcards.backend
    block, choice = job_block(job)
    extract_frames(
        job.input.manifest,
        job.output.frames,
        backend,
        block,
        job.params.preprocessing,
        split=job.wildcards.split,
        threads=job.threads,
        layer_choice=choice,
    )


if __name__ == "__main__":
    run_rule(main)
