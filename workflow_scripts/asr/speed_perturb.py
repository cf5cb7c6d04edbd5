"""Speed perturbation of training audio, Kaldi-style (asr.finetune.speed_perturbation).

As Kaldi's ``perturb_data_dir_speed.sh`` (sox ``speed``) does, a factor f changes tempo and
pitch together by resampling: the samples are read as if recorded at f x the rate and resampled
(soxr) back to it, so a clip of n samples becomes about n / f samples (f = 1.1 is 10% faster
and higher, 0.9 slower and lower). The VLSP 2025 winner trained its ASR with 0.9x speed; the
usual set is 0.9 / 1.0 / 1.1. Factors are drawn per training example and access from NumPy's
global generator, which the Trainer seeds (and restores when a run resumes): same seed, same
factors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import soxr


def speed_perturb(waveform: np.ndarray, factor: float, sampling_rate: int = 16000) -> np.ndarray:
    """``waveform`` (mono) played ``factor`` times faster, at the same sampling rate (float32)."""
    if not np.isfinite(factor) or factor <= 0:
        raise ValueError(f"speed_perturb: the factor must be positive, got {factor!r}")
    samples = np.asarray(waveform, dtype=np.float32)
    if factor == 1.0:
        return samples
    # Read at factor x the rate, resampled to the rate: n samples -> about n / factor.
    return np.ascontiguousarray(soxr.resample(samples, sampling_rate * factor, sampling_rate, quality="HQ"))


def draw_factor(factors: Sequence[float], rng: np.random.Generator | None = None) -> float:
    """One factor of ``factors``, uniformly (``rng``, or NumPy's global generator as the Trainer seeds it)."""
    if not factors:
        raise ValueError("draw_factor: no speed factors")
    index = rng.integers(len(factors)) if rng is not None else np.random.randint(len(factors))
    return float(factors[int(index)])
