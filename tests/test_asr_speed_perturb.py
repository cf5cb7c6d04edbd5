"""Kaldi-style speed perturbation of ASR training audio (workflow_scripts/asr/speed_perturb.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.asr.speed_perturb import draw_factor, speed_perturb
from workflow_scripts.asr.train import WhisperSpeechDataset

from conftest import write_tone

RATE = 16000


def dominant_frequency(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / RATE)[spectrum.argmax()])


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_resampling_changes_tempo_and_pitch_together(factor):
    t = np.arange(RATE) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    out = speed_perturb(tone, factor, RATE)
    assert out.dtype == np.float32
    assert abs(len(out) - RATE / factor) <= 2  # n samples -> n / factor
    assert dominant_frequency(out) == pytest.approx(220.0 * factor, abs=2.0)
    assert np.abs(out).max() == pytest.approx(0.5, abs=0.02)
    assert speed_perturb(tone, 1.0, RATE) is not None and np.array_equal(speed_perturb(tone, 1.0, RATE), tone)
    with pytest.raises(ValueError, match="positive"):
        speed_perturb(tone, 0.0, RATE)


def test_factors_are_drawn_uniformly_and_reproducibly():
    np.random.seed(3)
    first = [draw_factor((0.9, 1.0, 1.1)) for _ in range(300)]
    np.random.seed(3)
    assert [draw_factor((0.9, 1.0, 1.1)) for _ in range(300)] == first
    assert {f: first.count(f) for f in (0.9, 1.0, 1.1)} == pytest.approx({0.9: 100, 1.0: 100, 1.1: 100}, abs=30)
    rng = np.random.default_rng(0)
    assert draw_factor([0.9], rng) == 0.9


def test_training_dataset_perturbs_each_access_and_caches_per_factor(tmp_path):
    from transformers import WhisperFeatureExtractor

    clip = write_tone(tmp_path / "a.wav", seconds=2.0, sample_rate=RATE, frequency=300.0)
    extractor = WhisperFeatureExtractor(feature_size=40, sampling_rate=RATE, hop_length=160, chunk_length=3)
    processor = SimpleNamespace(
        tokenizer=lambda text: SimpleNamespace(input_ids=[1, 2, 3]), feature_extractor=extractor
    )
    data = pd.DataFrame({"utt_id": ["a"], "audio_path": [str(clip)], "target": ["xin chào"]})
    plain = WhisperSpeechDataset(data, processor, 10, tmp_path / "plain")
    fast = WhisperSpeechDataset(data, processor, 10, tmp_path / "fast", speed_factors=(1.1,))
    mixed = WhisperSpeechDataset(data, processor, 10, tmp_path / "mixed", speed_factors=(0.9, 1.0, 1.1))
    reference = plain[0]["input_features"]
    perturbed = fast[0]["input_features"]
    assert perturbed.shape == reference.shape and not np.allclose(perturbed, reference)
    # Energy in 2 / 1.1 s instead of 2 s: the perturbed clip ends earlier (100 frames per second).
    active = lambda features: int((features.max(axis=0) > features.min() + 0.1).sum())  # noqa: E731
    assert active(perturbed) < active(reference)
    np.random.seed(0)
    for _ in range(12):
        mixed[0]
    assert {speed for _, speed in mixed.cache.keys()} == {0.9, 1.0, 1.1}
    assert np.array_equal(mixed.cache.get((0, 1.0)), reference)
