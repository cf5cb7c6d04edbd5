"""Reading audio files with errors that name the file and the reason."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class AudioCheck:
    """What ingestion needs to know about one audio file."""

    duration_s: float
    sample_rate: int
    channels: int
    peak: float


def read_audio(path: str | os.PathLike, always_2d: bool = False) -> tuple[np.ndarray, int]:
    """Read ``path`` as float32 in [-1, 1]; shape (samples,) for mono unless ``always_2d``.

    Multi-channel files come back as (samples, channels).
    """
    if not os.path.exists(path):
        raise AudioError(f"{path}: audio file not found")
    try:
        samples, sample_rate = sf.read(path, dtype="float32", always_2d=always_2d)
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(f"{path}: unreadable audio ({error})") from error
    return samples, int(sample_rate)


def check_audio(path: str | os.PathLike, silence_peak: float) -> AudioCheck:
    """Read ``path`` fully and reject empty, non-finite or all-silent audio.

    ``silence_peak`` is the absolute amplitude below which every sample counts as silence.
    """
    samples, sample_rate = read_audio(path, always_2d=True)
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if not np.isfinite(samples).all():
        raise AudioError(f"{path}: non-finite samples (NaN or inf)")
    peak = float(np.abs(samples).max())
    if peak <= silence_peak:
        raise AudioError(f"{path}: all-silent audio (peak {peak:.2e} <= silence_peak {silence_peak:.2e})")
    return AudioCheck(
        duration_s=samples.shape[0] / sample_rate,
        sample_rate=sample_rate,
        channels=samples.shape[1],
        peak=peak,
    )
