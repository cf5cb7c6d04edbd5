"""SEFE preprocessing: mono mix-down, soxr resampling, peak normalisation, pad/trim, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from workflow_scripts.common.audio import AudioError
from workflow_scripts.sefe.preprocess import (
    Preprocessing,
    load_waveform,
    pad_or_trim,
    peak_normalize,
    preprocess,
    resample,
    to_mono,
)

from sefe_fixtures import EMODB, PREPROCESSING, tone

PAPER = Preprocessing.from_config({**PREPROCESSING, "fixed_length_s": 5.0})


def dominant_frequency(signal: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1.0 / sample_rate)[np.argmax(spectrum)])


def test_emodb_clips_become_5s_16khz_peak_1():
    if not (EMODB / "labels.tsv").exists():
        pytest.skip(f"EmoDB copy not found at {EMODB} (../shared/data/speech/emodb_2s); skipping real-data check")
    table = pd.read_csv(EMODB / "labels.tsv", sep="\t", quoting=3, dtype=str)
    for path in [EMODB / p for p in table["path"].iloc[:: max(1, len(table) // 12)]]:
        samples, rate = sf.read(path, dtype="float32")
        assert rate == 22050
        out = load_waveform(path, PAPER)
        assert out.dtype == np.float32 and out.shape == (80000,)
        assert np.max(np.abs(out)) == pytest.approx(1.0, abs=1e-6)
        # 2.0 s of audio at 16 kHz, then zeros up to 5 s
        assert np.count_nonzero(out[32010:]) == 0
        assert np.abs(out[:32000]).max() == pytest.approx(1.0, abs=1e-6)
        # the resampled signal keeps the shape of the original (same content, not just the length)
        reference = np.interp(np.arange(32000) / 16000, np.arange(len(samples)) / 22050, samples)
        scale = np.max(np.abs(samples))
        assert np.corrcoef(out[:32000] * scale, reference)[0, 1] > 0.95


def test_stereo_44k1_file(tmp_path):
    t = np.arange(3 * 44100) / 44100
    left = (0.6 * np.sin(2 * np.pi * 200.0 * t)).astype(np.float32)
    right = (0.3 * np.sin(2 * np.pi * 330.0 * t)).astype(np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    out = load_waveform(path, PAPER)
    assert out.shape == (80000,) and np.max(np.abs(out)) == pytest.approx(1.0, abs=1e-6)
    mono = (left + right) / 2
    expected = resample(mono, 44100, 16000)
    expected = expected / np.max(np.abs(expected))
    np.testing.assert_allclose(out[: len(expected)], expected, atol=1e-5)
    assert np.count_nonzero(out[len(expected) :]) == 0
    first = load_waveform(path, Preprocessing.from_config({**PREPROCESSING, "channels": "first"}))
    left16 = resample(left, 44100, 16000)
    np.testing.assert_allclose(first, left16 / np.max(np.abs(left16)), atol=1e-5)
    assert dominant_frequency(first, 16000) == pytest.approx(200.0, abs=1.0)
    assert len(first) == round(3.0 * 16000)  # full length kept when fixed_length_s is null


def test_resample_keeps_frequency_and_duration():
    signal = np.sin(2 * np.pi * 440.0 * np.arange(22050 * 2) / 22050).astype(np.float32)
    out = resample(signal, 22050, 16000)
    assert abs(len(out) - 32000) <= 1
    assert dominant_frequency(out, 16000) == pytest.approx(440.0, abs=1.0)
    assert resample(signal, 16000, 16000) is signal or np.array_equal(resample(signal, 16000, 16000), signal)


def test_steps():
    stereo = np.array([[1.0, 0.0], [0.5, -0.5], [0.0, 0.25]], dtype=np.float32)
    np.testing.assert_allclose(to_mono(stereo, "mean"), [0.5, 0.0, 0.125])
    np.testing.assert_allclose(to_mono(stereo, "first"), [1.0, 0.5, 0.0])
    np.testing.assert_allclose(peak_normalize(np.array([0.1, -0.4, 0.2], np.float32), 0.8), [0.2, -0.8, 0.4])
    assert not peak_normalize(np.zeros(4, np.float32)).any()
    np.testing.assert_array_equal(pad_or_trim(np.arange(5.0), 3), [0, 1, 2])
    np.testing.assert_array_equal(pad_or_trim(np.arange(3.0), 5), [0, 1, 2, 0, 0])
    np.testing.assert_array_equal(pad_or_trim(np.arange(3.0), None), [0, 1, 2])
    quiet = (0.1 * tone(1.0, 16000)).reshape(-1, 1)
    unchanged = preprocess(quiet, 16000, Preprocessing.from_config({**PREPROCESSING, "peak_normalize": False}))
    np.testing.assert_allclose(unchanged, quiet[:, 0])


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="sefe.preprocessing: unknown key"):
        Preprocessing.from_config({**PREPROCESSING, "sample_rte": 16000})
    with pytest.raises(ValueError, match="sefe.preprocessing.channels"):
        Preprocessing.from_config({**PREPROCESSING, "channels": "left"})
    with pytest.raises(ValueError, match="fixed_length_s"):
        Preprocessing.from_config({**PREPROCESSING, "fixed_length_s": -1.0})


def test_corrupt_empty_and_nonfinite_audio_name_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage that is not audio")
    with pytest.raises(AudioError, match="corrupt.wav: unreadable audio"):
        load_waveform(corrupt, PAPER)
    with pytest.raises(AudioError, match="missing.wav: audio file not found"):
        load_waveform(tmp_path / "missing.wav", PAPER)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav: empty audio"):
        load_waveform(empty, PAPER)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.1, np.nan, 0.2], np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: non-finite"):
        load_waveform(nan, PAPER)
