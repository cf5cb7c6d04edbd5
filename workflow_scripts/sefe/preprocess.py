"""Waveform preprocessing of the acoustic encoder (SEFE), as the paper prepares its audio.

Every step is configured in ``sefe.preprocessing`` and applied in this order:

1. channel mix-down to mono (average of the channels, or the first channel);
2. resampling to ``sample_rate`` (16 kHz for the paper's encoders) with soxr, the resampler
   librosa uses, called directly because librosa's wrapper imports scipy.signal (seconds);
3. voice activity detection (``vad``, off by default): leading and trailing non-speech cut with
   Silero VAD (workflow_scripts.common.vad, shared with the ASR stage);
4. peak normalisation: the largest absolute sample becomes ``peak_level``;
5. pad with trailing zeros or trim the end to ``fixed_length_s`` (paper: 5 s), or keep the
   full length when it is null.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import soxr

from workflow_scripts.common.audio import AudioError, read_audio
from workflow_scripts.common.vad import Trimmed, trim_non_speech

CHANNEL_MODES = ("mean", "first")


@dataclass(frozen=True)
class Preprocessing:
    """The settings of ``sefe.preprocessing`` (see schemas/sefe.schema.yaml)."""

    sample_rate: int = 16000
    channels: str = "mean"
    peak_normalize: bool = True
    peak_level: float = 1.0
    fixed_length_s: float | None = 5.0
    resample_quality: str = "HQ"
    vad: Mapping[str, Any] | None = None  # the sefe.preprocessing.vad block (None: no VAD)

    @classmethod
    def from_config(cls, block: Mapping[str, Any]) -> Preprocessing:
        """Build from the config block, naming unknown keys and bad values."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(block) - known)
        if unknown:
            raise ValueError(f"sefe.preprocessing: unknown key(s) {unknown} (known: {sorted(known)})")
        settings = cls(**block)
        if settings.channels not in CHANNEL_MODES:
            raise ValueError(f"sefe.preprocessing.channels: {settings.channels!r}, expected one of {CHANNEL_MODES}")
        if settings.sample_rate <= 0:
            raise ValueError(f"sefe.preprocessing.sample_rate: {settings.sample_rate}, expected a positive integer")
        if not 0 < settings.peak_level <= 1:
            raise ValueError(f"sefe.preprocessing.peak_level: {settings.peak_level}, expected a value in (0, 1]")
        if settings.fixed_length_s is not None and settings.fixed_length_s <= 0:
            raise ValueError(f"sefe.preprocessing.fixed_length_s: {settings.fixed_length_s}, expected > 0 or null")
        return settings

    @property
    def vad_enabled(self) -> bool:
        """Whether the VAD trims (``vad.enabled``)."""
        return self.vad is not None and bool(self.vad["enabled"])

    @property
    def fixed_samples(self) -> int | None:
        """The fixed output length in samples, or None to keep the full length."""
        if self.fixed_length_s is None:
            return None
        return int(round(self.fixed_length_s * self.sample_rate))

    def as_metadata(self) -> dict[str, Any]:
        """The settings as recorded in a feature file's metadata."""
        return {**asdict(self), "resampler": f"soxr {soxr.__version__} ({self.resample_quality})"}


def to_mono(samples: np.ndarray, mode: str = "mean") -> np.ndarray:
    """(samples,) or (samples, channels) -> (samples,): the channel mean or the first channel."""
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise ValueError(f"expected (samples,) or (samples, channels) audio, got shape {samples.shape}")
    if mode == "first":
        return np.ascontiguousarray(samples[:, 0])
    return samples.mean(axis=1, dtype=np.float64).astype(np.float32)


def resample(samples: np.ndarray, orig_sr: int, target_sr: int, quality: str = "HQ") -> np.ndarray:
    """Resample a mono signal with soxr; returned unchanged when the rates agree."""
    if orig_sr == target_sr:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, orig_sr, target_sr, quality=quality).astype(np.float32, copy=False)


def peak_normalize(samples: np.ndarray, level: float = 1.0) -> np.ndarray:
    """Scale so that max |x| equals ``level``; an all-zero signal is returned unchanged."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak == 0.0:
        return samples
    return (samples * (level / peak)).astype(np.float32)


def pad_or_trim(samples: np.ndarray, length: int | None) -> np.ndarray:
    """Trim the end or pad trailing zeros to exactly ``length`` samples (None: unchanged)."""
    if length is None or len(samples) == length:
        return samples
    if len(samples) > length:
        return samples[:length]
    return np.pad(samples, (0, length - len(samples)))


def preprocess_trimmed(samples: np.ndarray, sample_rate: int, settings: Preprocessing) -> Trimmed:
    """Apply the configured steps to samples read from a file (float32, any rate and channels); with what
    the VAD removed (nothing when it is off)."""
    mono = to_mono(samples, settings.channels)
    mono = resample(mono, sample_rate, settings.sample_rate, settings.resample_quality)
    trimmed = Trimmed(mono, 0.0, True)
    if settings.vad_enabled:
        trimmed = trim_non_speech(mono, settings.sample_rate, settings.vad)
    mono = trimmed.waveform
    if settings.peak_normalize:
        mono = peak_normalize(mono, settings.peak_level)
    waveform = np.ascontiguousarray(pad_or_trim(mono, settings.fixed_samples), dtype=np.float32)
    return Trimmed(waveform, trimmed.removed_s, trimmed.speech_found)


def preprocess(samples: np.ndarray, sample_rate: int, settings: Preprocessing) -> np.ndarray:
    """Apply the configured steps to samples read from a file (float32, any rate and channels)."""
    return preprocess_trimmed(samples, sample_rate, settings).waveform


def load_trimmed(path: str | os.PathLike, settings: Preprocessing) -> Trimmed:
    """Read and preprocess one file, with what the VAD removed; AudioError names the file for unreadable,
    empty or non-finite audio."""
    samples, sample_rate = read_audio(path, always_2d=True)
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if not np.isfinite(samples).all():
        raise AudioError(f"{path}: non-finite samples (NaN or inf)")
    trimmed = preprocess_trimmed(samples, sample_rate, settings)
    if trimmed.waveform.size == 0:
        raise AudioError(f"{path}: no samples left after resampling to {settings.sample_rate} Hz")
    return trimmed


def load_waveform(path: str | os.PathLike, settings: Preprocessing) -> np.ndarray:
    """Read and preprocess one file (see :func:`load_trimmed`)."""
    return load_trimmed(path, settings).waveform
