"""SEFE feature extraction: one split's manifest -> pooled acoustic features as parquet.

Utterances are streamed in chunks of ``batch_size``: read and preprocessed
(workflow_scripts.sefe.preprocess), encoded to frame-level features by the configured
backend (workflow_scripts.sefe.backends), pooled over frames into mean / var / max / min
and appended to the feature file (workflow_scripts.common.features.FeatureWriter), so peak memory
does not grow with the corpus. The weights-free backend runs chunks in ``threads`` forked
worker processes; model backends use ``threads`` torch threads and read the next chunk in a
background thread while the model runs.
"""

import collections
import logging
import multiprocessing
import multiprocessing.pool
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from workflow_scripts.common.audio import AudioError
from workflow_scripts.common.features import FeatureWriter
from workflow_scripts.common.manifest import AudioItems
from workflow_scripts.common.memory import fix_malloc_mmap_threshold
from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.vad import VadTally
from workflow_scripts.sefe.backends import Backend, build_backend
from workflow_scripts.sefe.layer_choice import job_block, metadata_record, run_block
from workflow_scripts.sefe.preprocess import Preprocessing, load_trimmed

log = logging.getLogger(__name__)

Item = tuple[str, str]  # (utt_id, audio path)


@dataclass
class Chunk:
    """Pooled statistics of consecutive utterances."""

    utt_ids: list[str]
    stats: dict[str, np.ndarray]  # statistic -> (len(utt_ids), dim) float32
    audio_seconds: float  # after preprocessing
    vad: VadTally  # what the VAD removed (sefe.preprocessing.vad)


def pool_frames(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, population variance, max and min over the frames of a (frames, dim) matrix."""
    if frames.ndim != 2 or frames.shape[0] == 0:
        raise ValueError(f"expected a (frames >= 1, dim) matrix, got shape {frames.shape}")
    values = frames.astype(np.float64, copy=False)
    return {
        "mean": values.mean(axis=0),
        "var": values.var(axis=0),
        "max": values.max(axis=0),
        "min": values.min(axis=0),
    }


def chunked(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Consecutive lists of at most ``size`` items."""
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_chunk_tallied(items: Sequence[Item], settings: Preprocessing) -> tuple[list[np.ndarray], VadTally]:
    """Read and preprocess the audio of ``items``, with what the VAD removed; errors name the file and
    the utterance."""
    waveforms = []
    tally = VadTally()
    for utt_id, path in items:
        try:
            trimmed = load_trimmed(path, settings)
        except AudioError as error:
            raise AudioError(f"utt_id {utt_id!r}: {error}") from error
        waveforms.append(trimmed.waveform)
        tally.add(trimmed)
    return waveforms, tally


def load_chunk(items: Sequence[Item], settings: Preprocessing) -> list[np.ndarray]:
    """Read and preprocess the audio of ``items``; errors name the file and the utterance."""
    return load_chunk_tallied(items, settings)[0]


def checked_utterance_statistics(
    backend: Backend, items: Sequence[Item], waveforms: Sequence[np.ndarray]
) -> dict[str, np.ndarray]:
    """The backend's own utterance statistics of ``waveforms``; a wrong shape or a non-finite value
    names the utterance."""
    stats = backend.utterance_statistics(waveforms)
    for name in backend.statistics:
        values = stats[name]
        if values.shape != (len(items), backend.statistics_dim):
            raise ValueError(
                f"backend {backend.name} returned {name} of shape {values.shape}, "
                f"expected {(len(items), backend.statistics_dim)}"
            )
        for (utt_id, path), row in zip(items, values, strict=True):
            if not np.isfinite(row).all():
                raise ValueError(f"utt_id {utt_id!r} ({path}): backend {backend.name} returned non-finite {name}")
    return {name: np.asarray(stats[name], dtype=np.float32) for name in backend.statistics}


def encode_waveforms(
    backend: Backend,
    items: Sequence[Item],
    waveforms: Sequence[np.ndarray],
    sample_rate: int,
    vad: VadTally | None = None,
) -> Chunk:
    """Frame features of ``waveforms`` from ``backend``, pooled per utterance (or the backend's own
    utterance statistics, for a backend that has them)."""
    seconds = sum(len(w) for w in waveforms) / sample_rate
    utt_ids = [u for u, _ in items]
    vad = vad or VadTally()
    if backend.utterance_level:
        return Chunk(utt_ids, checked_utterance_statistics(backend, items, waveforms), seconds, vad)
    frames = backend.frames(waveforms)
    rows: dict[str, list[np.ndarray]] = {name: [] for name in backend.statistics}
    for (utt_id, path), matrix in zip(items, frames, strict=True):
        if matrix.ndim != 2 or matrix.shape[1] != backend.dim or matrix.shape[0] == 0:
            raise ValueError(
                f"utt_id {utt_id!r} ({path}): backend {backend.name} returned frames of shape "
                f"{matrix.shape}, expected (frames >= 1, {backend.dim})"
            )
        for name, value in pool_frames(matrix).items():
            rows[name].append(value)
    stats = {name: np.asarray(values, dtype=np.float32) for name, values in rows.items()}
    return Chunk(utt_ids, stats, seconds, vad)


# Pool workers inherit these through fork (no pickling of the backend).
_WORKER: dict[str, Any] = {}


def _init_worker(backend: Backend, settings: Preprocessing) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one BLAS thread per worker process: the workers are the parallelism
    _WORKER.update(backend=backend, settings=settings)


def _encode_in_worker(items: list[Item]) -> Chunk:
    settings = _WORKER["settings"]
    waveforms, vad = load_chunk_tallied(items, settings)
    return encode_waveforms(_WORKER["backend"], items, waveforms, settings.sample_rate, vad)


def prefetch(iterator: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Run ``iterator`` in a background thread at most ``depth`` items ahead; re-raises its errors."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for value in iterator:
                while not stop.is_set():
                    try:
                        buffer.put((value, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((done, None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            buffer.put((done, error))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            value, error = buffer.get()
            if value is done:
                if error is not None:
                    raise error
                return
            yield value
    finally:
        stop.set()


def ordered_map(
    pool: multiprocessing.pool.Pool, function: Callable[[Any], Any], tasks: Iterable[Any], ahead: int
) -> Iterator[Any]:
    """``pool.imap(function, tasks)`` with at most ``ahead`` tasks in flight, results in task order.

    ``Pool.imap`` hands out tasks as fast as its workers take them and queues every result the
    consumer has not taken yet: nothing bounded the memory of a consumer slower than the workers
    (a parquet writer behind fast feature workers)."""
    pending: collections.deque = collections.deque()
    for task in tasks:
        pending.append(pool.apply_async(function, (task,)))
        if len(pending) >= ahead:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def encode_chunks(
    backend: Backend, settings: Preprocessing, items: Collection[Item], batch_size: int, workers: int
) -> Iterator[Chunk]:
    """Pooled statistics chunk by chunk, in manifest order."""
    batches = chunked(items, batch_size)
    if backend.process_parallel and workers > 1 and len(items) > batch_size:
        # fork: workers start in milliseconds and share the parent's imported libraries
        context = multiprocessing.get_context("fork")
        with context.Pool(workers, initializer=_init_worker, initargs=(backend, settings)) as pool:
            yield from ordered_map(pool, _encode_in_worker, batches, ahead=2 * workers)
        return
    if backend.process_parallel:
        _init_worker(backend, settings)
        for batch in batches:
            yield _encode_in_worker(batch)
        return
    loaded = ((batch, *load_chunk_tallied(batch, settings)) for batch in batches)
    for batch, waveforms, vad in prefetch(loaded):
        yield encode_waveforms(backend, batch, waveforms, settings.sample_rate, vad)


def feature_metadata(
    backend: Backend,
    settings: Preprocessing,
    backend_cfg: Mapping[str, Any],
    split: str | None,
    layer_choice: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``dfat`` metadata of a SEFE feature file (with ``layer_choice`` when the layer was chosen)."""
    choice = {"layer_choice": metadata_record(layer_choice)} if layer_choice else {}
    return {
        **choice,
        "model": backend.name,
        "backend": backend.name,
        "checkpoint": backend.checkpoint,
        "preprocessing": settings.as_metadata(),
        "backend_config": dict(backend_cfg),
        "split": split,
        "pooling": "statistics over all frames of the preprocessed waveform (var: population variance)",
        **backend.metadata(),
    }


def extract_split(
    items: Collection[Item],
    backend: Backend,
    settings: Preprocessing,
    output: str | os.PathLike,
    metadata: Mapping[str, Any],
    batch_size: int,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, float]:
    """Write the pooled features of ``items`` (a manifest's :class:`AudioItems`, or a list) to ``output``,
    in their order; returns throughput figures."""
    started = time.perf_counter()
    audio_seconds = 0.0
    vad = VadTally()
    interval = 0.5 if sys.stderr.isatty() else 15.0  # keep rule logs short
    with (
        FeatureWriter(output, backend.statistics, backend.statistics_dim, metadata) as writer,
        tqdm(
            total=len(items),
            unit="utt",
            desc=f"SEFE {backend.name}",
            disable=not progress,
            mininterval=interval,
            file=sys.stderr,
        ) as bar,
    ):
        for chunk in encode_chunks(backend, settings, items, batch_size, workers):
            writer.write(chunk.utt_ids, chunk.stats)
            audio_seconds += chunk.audio_seconds
            vad.merge(chunk.vad)
            bar.update(len(chunk.utt_ids))
    elapsed = time.perf_counter() - started
    if settings.vad_enabled:
        log.info(vad.describe(str(metadata.get("split"))))
    return {
        "utterances": len(items),
        "audio_seconds": round(audio_seconds, 3),
        "seconds": round(elapsed, 3),
        "utterances_per_second": round(len(items) / elapsed, 2) if elapsed > 0 else float("inf"),
        "real_time_factor": round(elapsed / audio_seconds, 5) if audio_seconds > 0 else float("nan"),
    }


def build_extractor(
    backend_name: str, backend_cfg: Mapping[str, Any], preprocessing: Mapping[str, Any], threads: int
) -> tuple[Backend, Preprocessing]:
    """The backend ``backend_name`` configured by its block, and the preprocessing settings it reads."""
    settings = Preprocessing.from_config(preprocessing)
    return build_backend(backend_name, backend_cfg, settings.sample_rate, max(1, threads)), settings


def load_extractor(config: Mapping[str, Any], run_dir: str | os.PathLike, threads: int):
    """predict's SEFE stage: ``extract(audio_paths) -> {statistic: (n, dim) float32}``, as extract_sefe."""
    sefe = config["sefe"]
    name = sefe["backend"]
    block, _ = run_block(config, name, run_dir)
    backend, settings = build_extractor(name, block, sefe["preprocessing"], threads)

    def extract(paths: Sequence[str]) -> dict[str, np.ndarray]:
        items = [(str(index), str(path)) for index, path in enumerate(paths)]
        rows: dict[str, dict[str, np.ndarray]] = {}
        for chunk in encode_chunks(backend, settings, items, int(block["batch_size"]), 1):
            for position, utt_id in enumerate(chunk.utt_ids):
                rows[utt_id] = {s: chunk.stats[s][position] for s in backend.statistics}
        return {s: np.stack([rows[utt_id][s] for utt_id, _ in items]) for s in backend.statistics}

    return extract


def tune_process() -> None:
    """Process settings of an extraction run; call before the backend is built (before ``import torch``)."""
    # OpenMP threads that spin while waiting stall torch ~10x on a busy or shared CPU (measured
    # with 2 threads on 2 cores); passive waiting costs nothing measurable. Must precede `import torch`.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    fix_malloc_mmap_threshold()


def extract_features(
    backend_name: str,
    backend_cfg: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
    manifest_path: str | os.PathLike,
    output: str | os.PathLike,
    split: str | None,
    threads: int,
    layer_choice: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """What extract_sefe does: the pooled features of one manifest with backend ``backend_name``
    (configured by its block ``backend_cfg``) written to ``output``; returns throughput figures.
    ``layer_choice``: the record of ``layer: auto``'s choice (sefe/layer_choice.py), kept in the metadata."""
    threads = max(1, threads)
    backend, settings = build_extractor(backend_name, backend_cfg, preprocessing, threads)
    items = AudioItems(manifest_path)
    log.info(
        "%s: %d utterances, backend %s (%s, dim %d), %d thread(s)",
        manifest_path,
        len(items),
        backend.name,
        backend.checkpoint,
        backend.dim,
        threads,
    )
    figures = extract_split(
        items,
        backend,
        settings,
        output,
        feature_metadata(backend, settings, backend_cfg, split, layer_choice),
        int(backend_cfg["batch_size"]),
        workers=threads,
    )
    log.info("wrote %s: %s", output, figures)
    return figures


def main(job: Any) -> None:
    """Entry point of the extract_sefe rule (``job``: the rule's ``snakemake`` object)."""
    tune_process()
    block, choice = job_block(job)
    extract_features(
        job.wildcards.backend,
        block,
        job.params.preprocessing,
        job.input.manifest,
        job.output.features,
        job.wildcards.split,
        job.threads,
        choice,
    )


if __name__ == "__main__":
    run_rule(main)
