"""Voice activity detection with Silero VAD: cut the non-speech before and after the speech.

One function, :func:`trim_non_speech`, for both stages that read audio: SEFE
(``sefe.preprocessing.vad``, after resampling) and ASR (``asr.transcribe.vad``, at waveform load);
the block's keys are in schemas/vad.schema.yaml. Leading and trailing non-speech is removed, and
with ``max_inner_pause_s`` also every pause between two speech segments longer than that. A clip in
which Silero finds no speech is kept whole (a model that hears nothing is no reason to lose it).

Silero VAD (``silero-vad``, MIT, its weights inside the wheel) runs at 8 or 16 kHz: audio at any
other rate is resampled to 16 kHz for the detection only (soxr), and the cut applies to the
original samples. Its TorchScript model needs torch alone (torchaudio only reads files, which this
module does not ask it to do). Importing ``silero_vad`` sets torch's threads to 1 process-wide; the
import here restores the caller's setting.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

log = logging.getLogger(__name__)

# The rates Silero VAD's model takes; audio at other rates is resampled to the last for detection.
DETECTION_RATES = (8000, 16000)


@dataclass(frozen=True)
class Trimmed:
    """A waveform after the VAD, and what was cut from it."""

    waveform: np.ndarray
    removed_s: float
    speech_found: bool


@functools.cache
def silero() -> tuple[Any, Callable[..., list[dict[str, int]]]]:
    """Silero VAD's TorchScript model, loaded once per process, and its ``get_speech_timestamps``
    (torch's thread count left as it was before the import)."""
    import torch

    threads = torch.get_num_threads()
    try:
        from silero_vad import get_speech_timestamps, load_silero_vad
    except ImportError as error:
        raise ImportError(
            "sefe.preprocessing.vad / asr.transcribe.vad need the silero-vad package: "
            "pip install 'dfat-workflow[vad]' (silero-vad==6.2.3)"
        ) from error
    finally:
        torch.set_num_threads(threads)
    return load_silero_vad(onnx=False), get_speech_timestamps


def speech_segments(waveform: np.ndarray, sample_rate: int, block: Mapping[str, Any]) -> list[tuple[int, int]]:
    """Silero's speech segments of ``waveform`` as (start, end) sample indices at ``sample_rate``."""
    import torch

    rate = sample_rate if sample_rate in DETECTION_RATES else DETECTION_RATES[-1]
    audio = waveform if rate == sample_rate else soxr.resample(waveform, sample_rate, rate)
    model, get_speech_timestamps = silero()
    with torch.inference_mode():
        stamps = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
            model,
            threshold=float(block["threshold"]),
            sampling_rate=rate,
            min_speech_duration_ms=int(block["min_speech_ms"]),
            min_silence_duration_ms=int(block["min_silence_ms"]),
            speech_pad_ms=int(block["speech_pad_ms"]),
        )
    scale = sample_rate / rate
    return [(int(s["start"] * scale), min(len(waveform), int(round(s["end"] * scale)))) for s in stamps]


def kept_spans(segments: Sequence[tuple[int, int]], max_pause: int | None) -> list[tuple[int, int]]:
    """The spans to keep: first start to last end, or, with ``max_pause`` (samples), that span split at
    every pause between segments longer than ``max_pause``."""
    if max_pause is None:
        return [(segments[0][0], segments[-1][1])]
    spans = [segments[0]]
    for start, end in segments[1:]:
        if start - spans[-1][1] > max_pause:
            spans.append((start, end))
        else:
            spans[-1] = (spans[-1][0], end)
    return spans


def trim_non_speech(waveform: np.ndarray, sample_rate: int, block: Mapping[str, Any]) -> Trimmed:
    """``waveform`` without its leading and trailing non-speech (and long inner pauses, see the block);
    unchanged when ``block["enabled"]`` is false or no speech is found."""
    if not block["enabled"] or waveform.size == 0:
        return Trimmed(waveform, 0.0, True)
    segments = speech_segments(waveform, sample_rate, block)
    if not segments:
        return Trimmed(waveform, 0.0, False)
    pause = block["max_inner_pause_s"]
    spans = kept_spans(segments, None if pause is None else int(round(pause * sample_rate)))
    kept = np.concatenate([waveform[start:end] for start, end in spans]).astype(waveform.dtype, copy=False)
    return Trimmed(np.ascontiguousarray(kept), (len(waveform) - len(kept)) / sample_rate, True)


@dataclass
class VadTally:
    """Seconds removed over many clips (one split), for the log line."""

    clips: int = 0
    removed_s: float = 0.0
    without_speech: int = 0

    def add(self, trimmed: Trimmed) -> None:
        self.clips += 1
        self.removed_s += trimmed.removed_s
        self.without_speech += not trimmed.speech_found

    def merge(self, other: VadTally) -> None:
        self.clips += other.clips
        self.removed_s += other.removed_s
        self.without_speech += other.without_speech

    def describe(self, what: str) -> str:
        """One log line: ``what`` (e.g. the split), the seconds removed, clips kept whole for lack of speech."""
        return (
            f"VAD {what}: {self.removed_s:.2f} s of non-speech removed from {self.clips} clips "
            f"({self.without_speech} without detected speech kept whole)"
        )
