"""Audio as the ASR models take it: mono float32 at the model's sampling rate.

Apart from the backends, so that fine-tuning (which reads audio the same way) does not depend
on the inference backends: editing a backend does not retrain Whisper.

Clips longer than the model's input window (Whisper: 30 s; the demo model: 6 s) are cut to it,
in fine-tuning and in transcription alike (``cut_to_window``; the feature extractors cut there
too), and counted in the log (``report_long_clips``). Nothing past the window is heard: split
long recordings into utterances before they become a corpus.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from workflow_scripts.common.audio import read_audio, read_audio_info

log = logging.getLogger(__name__)


def load_waveform(path: str | os.PathLike, sampling_rate: int) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sampling_rate`` (channels averaged, soxr resampling)."""
    samples, rate = read_audio(path)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if rate != sampling_rate:
        import librosa

        samples = librosa.resample(samples, orig_sr=rate, target_sr=sampling_rate)
    return np.ascontiguousarray(samples, dtype=np.float32)


def load_waveforms(audio_paths: Sequence[str], sampling_rate: int) -> list[np.ndarray]:
    """Every file as mono float32 at ``sampling_rate``."""
    return [load_waveform(path, sampling_rate) for path in audio_paths]


def waveform_length(path: str | os.PathLike, sampling_rate: int) -> int:
    """Samples :func:`load_waveform` gives for ``path`` at ``sampling_rate``, from the file's header alone.

    librosa's resampling returns ``ceil(frames x target / source)`` samples; computed the same way, so
    length-sorted batches are the same whether lengths come from the header or from the samples.
    """
    info = read_audio_info(path)
    if info.samplerate == sampling_rate:
        return int(info.frames)
    return int(np.ceil(info.frames * (float(sampling_rate) / info.samplerate)))


def cut_to_window(waveform: np.ndarray, sampling_rate: int, window_s: float) -> np.ndarray:
    """The first ``window_s`` seconds of ``waveform`` (the whole clip when it is shorter)."""
    return waveform[: int(round(window_s * sampling_rate))]


def report_long_clips(source: str, utt_ids: Sequence[str], seconds: Sequence[float], window_s: float) -> int:
    """Count the clips longer than the ``window_s`` input window and log them (they are cut); the count."""
    longer = [utt for utt, length in zip(utt_ids, seconds, strict=True) if float(length) > window_s]
    if longer:
        log.warning(
            "%s: %d of %d utterances are longer than the model's %.1f s window and are cut to it (e.g. %s)",
            source,
            len(longer),
            len(utt_ids),
            window_s,
            longer[0],
        )
    return len(longer)
