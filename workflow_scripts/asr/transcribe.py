"""Transcribe one split with an ASR system's model -> parquet (utt_id, hypothesis, reference).

Utterances are decoded in length-sorted batches with a progress bar (lengths from the file headers,
each batch's audio read when it is decoded: memory holds ``batch_size`` waveforms, not the split);
the parquet keeps the manifest's row order and carries the model and settings as schema metadata
(``dfat``; the contract is :mod:`workflow_scripts.asr.transcripts`). The ``oracle`` system (backend oracle)
loads no model: its hypotheses are the manifest's reference text.
"""

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from workflow_scripts.asr.backends import AsrBackend, BackendSpec, load_backend, transcribe_batches
from workflow_scripts.asr.transcripts import write_transcripts
from workflow_scripts.asr.waveforms import cut_to_window, load_waveforms, report_long_clips, waveform_length
from workflow_scripts.common import paths
from workflow_scripts.common.manifest import read_manifest, read_manifest_columns
from workflow_scripts.common.memory import fix_malloc_mmap_threshold
from workflow_scripts.common.names import FINETUNED, ORACLE_BACKEND, asr_systems, primary_system
from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.vad import VadTally, trim_non_speech

log = logging.getLogger(__name__)


def model_source(reference: str, finetuned: Sequence[str]) -> str:
    """The model a configured reference names: ``finetuned`` is the fine-tuned model directory
    (``finetuned``: the rule's input of that name, empty when no reference is ``finetuned``)."""
    if reference != FINETUNED:
        return reference
    if len(finetuned) != 1:
        raise ValueError(f"model {FINETUNED!r} stands for the fine-tuned model, but {list(finetuned)} was given for it")
    return str(finetuned[0])


def transcribe_files(
    backend: AsrBackend,
    audio_paths: Sequence[str],
    batch_size: int,
    progress: bool = True,
    vad: Mapping[str, Any] | None = None,
    what: str = "",
) -> tuple[list[str], list[int]]:
    """Texts of ``audio_paths`` and the samples heard of each at the model's rate (after the VAD,
    before the window's cut).

    Lengths come from the file headers; the audio is read one length-sorted batch at a time, as it
    is decoded, so memory holds one batch of waveforms whatever the number of files. With ``vad``
    (the asr.transcribe.vad block) each clip's non-speech is trimmed first (the seconds removed
    logged for ``what``); clips longer than the model's input window are then cut to it (counted by
    :func:`transcribe_manifest`).
    """
    rate, window_s = backend.sampling_rate, backend.max_input_seconds
    trims = vad is not None and vad["enabled"]
    heard = [waveform_length(path, rate) for path in audio_paths]
    # Clips longer than the model's window are cut to it (asr/waveforms.py), so they sort as the window.
    order = [min(length, int(round(window_s * rate))) for length in heard] if window_s else list(heard)
    tally = VadTally()

    def load(batch: Sequence[int]) -> list[np.ndarray]:
        waveforms = load_waveforms([audio_paths[i] for i in batch], rate)
        if trims:
            trimmed = [trim_non_speech(w, rate, vad) for w in waveforms]
            for index, clip in zip(batch, trimmed, strict=True):
                tally.add(clip)
                heard[index] = len(clip.waveform)
            waveforms = [clip.waveform for clip in trimmed]
        return [cut_to_window(w, rate, window_s) for w in waveforms] if window_s else waveforms

    texts = transcribe_batches(backend, order, load, batch_size, progress=progress)
    if trims:
        log.info(tally.describe(what))
    return texts, heard


def transcribe_manifest(
    manifest: str | os.PathLike,
    backend: AsrBackend,
    batch_size: int,
    progress: bool = True,
    vad: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Transcripts of every utterance of ``manifest`` and timing figures (seconds, real-time factor;
    the decoding seconds include reading the audio, which is read batch by batch as it is decoded);
    ``vad``: the asr.transcribe.vad block (None: no VAD)."""
    table = read_manifest_columns(manifest, ["utt_id", "audio_path", "text"])  # Arrow text: compact
    started = time.perf_counter()
    hypotheses, lengths = transcribe_files(
        backend, table.column("audio_path").to_pylist(), batch_size, progress=progress, vad=vad, what=str(manifest)
    )
    seconds = time.perf_counter() - started
    audio_seconds = sum(lengths) / backend.sampling_rate
    utt_ids = table.column("utt_id").to_pylist()
    if backend.max_input_seconds:
        report_long_clips(
            str(manifest), utt_ids, [length / backend.sampling_rate for length in lengths], backend.max_input_seconds
        )
    transcripts = pd.DataFrame(
        {"utt_id": utt_ids, "hypothesis": hypotheses, "reference": table.column("text").to_pylist()}
    )
    timing = {
        "utterances": len(utt_ids),
        "audio_seconds": round(audio_seconds, 2),
        "decode_seconds": round(seconds, 2),
        "real_time_factor": round(seconds / audio_seconds, 4) if audio_seconds else None,
    }
    return transcripts, timing


def oracle_transcripts(manifest: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The oracle system's transcripts: the manifest's reference text as hypothesis (WER 0)."""
    frame = read_manifest(manifest)
    transcripts = pd.DataFrame({"utt_id": frame["utt_id"], "hypothesis": frame["text"], "reference": frame["text"]})
    return transcripts, {"utterances": len(frame)}


def load_transcriber(config: Mapping[str, Any], run_dir: str | os.PathLike, threads: int):
    """predict's ASR stage: ``transcribe(audio_paths) -> list[str]`` with a finished run's model, that of
    the primary ASR system (``asr.primary_system``; predict --asr-system sets it)."""
    import torch

    torch.set_num_threads(max(1, threads))
    system = primary_system(config["asr"])
    block = asr_systems(config["asr"])[system]
    if block["backend"] == ORACLE_BACKEND:
        raise ValueError(
            f"ASR system {system!r} is the oracle (the reference transcripts of the corpus): it cannot transcribe "
            "new audio; choose a system with a model (predict --asr-system NAME)"
        )
    model = model_source(block["model"], [str(paths.in_run(paths.ASR_FINETUNED_MODEL, run_dir))])
    backend = load_backend(
        BackendSpec.from_dict({**block, "model": model}), device=block["device"], config_key="asr.transcribe.model"
    )

    def transcribe(audio_paths: Sequence[str]) -> list[str]:
        return transcribe_files(
            backend, list(audio_paths), int(block["batch_size"]), progress=False, vad=block["vad"], what="predict"
        )[0]

    return transcribe


def transcribe_split(
    manifest: str, block: Mapping[str, Any], finetuned: Sequence[str], out: str, threads: int
) -> dict[str, Any]:
    """Transcribe ``manifest`` with an ASR system's model (``block``: asr.transcribe with the system's keys
    over it) into ``out``; returns the timing. Backend oracle: the reference text, no model."""
    if block["backend"] == ORACLE_BACKEND:
        transcripts, timing = oracle_transcripts(manifest)
        log.info("%s: %d reference transcripts (oracle system)", manifest, timing["utterances"])
        write_transcripts(out, transcripts, {"backend": ORACLE_BACKEND, "manifest": manifest, "timing": timing})
        return timing
    import torch

    torch.set_num_threads(threads)
    spec = BackendSpec.from_dict({**block, "model": model_source(block["model"], finetuned)})
    backend = load_backend(spec, device=block["device"], config_key="asr.transcribe.model")
    transcripts, timing = transcribe_manifest(manifest, backend, int(block["batch_size"]), vad=block["vad"])
    log.info(
        "%s: %d utterances, %.1f s of audio in %.1f s (real-time factor %.3f)",
        manifest,
        timing["utterances"],
        timing["audio_seconds"],
        timing["decode_seconds"],
        timing["real_time_factor"] or 0,
    )
    metadata = {**backend.describe(), "manifest": manifest, "batch_size": block["batch_size"], "timing": timing}
    write_transcripts(out, transcripts, metadata)
    return timing


def main(job: Any) -> None:
    """Entry point of the transcribe rule (``job``: the rule's ``snakemake`` object)."""
    fix_malloc_mmap_threshold()  # batches of ever-changing shapes otherwise fragment the heap: RSS grew with the split
    transcribe_split(
        str(job.input.manifest),
        job.params.transcribe,
        list(job.input.finetuned),
        str(job.output.transcripts),
        job.threads,
    )


if __name__ == "__main__":
    run_rule(main)
