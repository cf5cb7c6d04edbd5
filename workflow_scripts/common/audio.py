"""Reading audio files with errors that name the file and the reason."""

from __future__ import annotations

import os
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class AudioCheck:
    """What ingestion needs to know about one audio file (``peak`` is None when only the header was read)."""

    duration_s: float
    sample_rate: int
    channels: int
    peak: float | None


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


def read_audio_info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """The header of ``path`` (frames, samplerate, channels, format) without reading samples."""
    if not os.path.exists(path):
        raise AudioError(f"{path}: audio file not found")
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(f"{path}: unreadable audio ({error})") from error


def find_unicode_variant(path: str | os.PathLike) -> str | None:
    """The existing file that ``path`` names up to Unicode normalisation (NFC / NFD), or None.

    A table written on one system may spell ``câu.wav`` composed (NFC) while the file system
    stores it decomposed (NFD), or the reverse: the names are the same text, not the same bytes.
    """
    path = str(path)
    for form in ("NFC", "NFD"):
        candidate = unicodedata.normalize(form, path)
        if os.path.exists(candidate):
            return candidate
    current = Path(Path(path).anchor or ".")
    for part in Path(path).parts[1 if Path(path).anchor else 0 :]:
        target = unicodedata.normalize("NFC", part)
        if (current / part).exists():
            current = current / part
            continue
        try:
            matches = [e for e in os.listdir(current) if unicodedata.normalize("NFC", e) == target]
        except OSError:
            return None
        if not matches:
            return None
        current = current / matches[0]
    return str(current)


def wav_declared_frames(path: str | os.PathLike) -> tuple[int, int] | None:
    """(frames the header's data chunk declares, frames the file holds) of a RIFF/WAVE file, else None.

    None too when the header leaves the size open (0 or 0xFFFFFFFF, as streaming writers do).
    """
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = None
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return None
            name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"fmt ":
                fmt = handle.read(size + (size & 1))
                if len(fmt) >= 14:
                    block_align = struct.unpack("<H", fmt[12:14])[0]
                continue
            if name == b"data":
                if not block_align or size in (0, 0xFFFFFFFF):
                    return None
                available = os.path.getsize(path) - handle.tell()
                return size // block_align, min(size, available) // block_align
            handle.seek(size + (size & 1), os.SEEK_CUR)


def truncation_error(path: str | os.PathLike, sample_rate: int) -> AudioError | None:
    """The error of a WAV file that holds fewer frames than its header declares, else None."""
    frames = wav_declared_frames(path)
    if frames is None or frames[1] >= frames[0]:
        return None
    return AudioError(
        f"{path}: truncated WAV file: the header declares {frames[0]} frames, the file holds {frames[1]} "
        f"({frames[1] / sample_rate:.3f} of {frames[0] / sample_rate:.3f} s); re-export or re-copy it"
    )


def too_short_error(path: str | os.PathLike, frames: int, sample_rate: int, min_duration_s: float) -> AudioError | None:
    """The error of a clip shorter than ``min_duration_s`` seconds (a corpus's ``min_duration_s``), else None."""
    if frames >= min_duration_s * sample_rate:
        return None
    return AudioError(
        f"{path}: clip of {frames / sample_rate:.3f} s is shorter than the minimum "
        f"{min_duration_s:g} s (min_duration_s)"
    )


def check_audio_header(path: str | os.PathLike, min_duration_s: float = 0.0) -> AudioCheck:
    """Duration, rate and channels from the header alone (no samples decoded): rejects missing,
    unreadable (not audio), empty, too short and truncated files; silence and non-finite samples show
    only at extraction, which reads the samples."""
    info = read_audio_info(path)
    error = truncation_error(path, info.samplerate)
    if error is not None:
        raise error
    if info.frames <= 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    error = too_short_error(path, info.frames, info.samplerate, min_duration_s)
    if error is not None:
        raise error
    return AudioCheck(
        duration_s=info.frames / info.samplerate, sample_rate=int(info.samplerate), channels=info.channels, peak=None
    )


def check_audio(path: str | os.PathLike, silence_peak: float, min_duration_s: float = 0.0) -> AudioCheck:
    """Read ``path`` fully and reject truncated, empty, too short, non-finite or all-silent audio.

    ``silence_peak`` is the absolute amplitude below which every sample counts as silence;
    ``min_duration_s`` the shortest clip accepted (a corpus's ``min_duration_s``).
    """
    samples, sample_rate = read_audio(path, always_2d=True)
    error = truncation_error(path, sample_rate)
    if error is not None:
        raise error
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    error = too_short_error(path, samples.shape[0], sample_rate, min_duration_s)
    if error is not None:
        raise error
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
