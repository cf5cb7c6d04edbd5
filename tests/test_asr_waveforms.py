"""ASR audio: 8 kHz and 44.1 kHz input resampled to the model's rate; clips longer than the window cut and counted."""

import logging
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from workflow_scripts.asr.backends import AsrBackend
from workflow_scripts.asr.train import WhisperSpeechDataset
from workflow_scripts.asr.transcribe import transcribe_manifest
from workflow_scripts.asr.waveforms import cut_to_window, load_waveform, report_long_clips

from asr_fixtures import write_corpus

RATE = 16000


def write_tone(path, seconds: float, sample_rate: int, frequency: float = 440.0, channels: int = 1) -> str:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.5 * np.sin(2 * np.pi * frequency * t).astype(np.float32)
    sf.write(path, np.stack([tone] * channels, axis=1) if channels > 1 else tone, sample_rate, subtype="PCM_16")
    return str(path)


def peak_frequency(samples: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / sample_rate)[spectrum.argmax()])


@pytest.mark.parametrize(("sample_rate", "channels"), [(8000, 1), (44100, 1), (44100, 2), (16000, 1)])
def test_telephone_and_cd_rates_are_resampled_to_the_models(tmp_path, sample_rate, channels):
    path = write_tone(tmp_path / "tone.wav", 1.5, sample_rate, channels=channels)
    samples = load_waveform(path, RATE)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - int(1.5 * RATE)) <= 1  # 1.5 s at the model's rate
    assert peak_frequency(samples, RATE) == pytest.approx(440.0, abs=2.0)  # the pitch survives resampling
    assert np.max(np.abs(samples)) == pytest.approx(0.5, abs=0.05)  # channels averaged, not summed


def test_long_clips_are_cut_to_the_window_and_counted(caplog):
    short, long = np.ones(RATE, np.float32), np.ones(3 * RATE, np.float32)
    assert len(cut_to_window(long, RATE, 2.0)) == 2 * RATE and len(cut_to_window(short, RATE, 2.0)) == RATE
    with caplog.at_level(logging.WARNING):
        assert report_long_clips("m.tsv", ["a", "b", "c"], [1.0, 3.0, 3.0], 2.0) == 2
    assert "m.tsv: 2 of 3 utterances are longer than the model's 2.0 s window and are cut to it (e.g. b)" in caplog.text
    caplog.clear()
    assert report_long_clips("m.tsv", ["a"], [1.0], 2.0) == 0 and not caplog.text


def test_fine_tuning_cuts_a_long_clip_as_the_extractor_would(tmp_path):
    from transformers import WhisperFeatureExtractor

    long = write_tone(tmp_path / "long.wav", 5.0, RATE)
    head = write_tone(tmp_path / "head.wav", 2.0, RATE)  # the same tone: the first 2 s of the long clip
    extractor = WhisperFeatureExtractor(feature_size=40, sampling_rate=RATE, hop_length=160, chunk_length=2)
    processor = SimpleNamespace(tokenizer=lambda text: SimpleNamespace(input_ids=[1, 2]), feature_extractor=extractor)
    data = pd.DataFrame({"utt_id": ["long", "head"], "audio_path": [long, head], "target": ["a", "b"]})
    dataset = WhisperSpeechDataset(data, processor, 10, tmp_path / "cache")
    np.testing.assert_array_equal(dataset[0]["input_features"], dataset[1]["input_features"])
    uncut = extractor(load_waveform(long, RATE), sampling_rate=RATE, return_tensors="np").input_features[0]
    np.testing.assert_array_equal(dataset[0]["input_features"], uncut)  # as the extractor alone cuts


class LengthBackend(AsrBackend):
    """Transcribes each waveform as its length in samples: what the model was given."""

    sampling_rate = RATE
    max_input_seconds = 1.2

    def transcribe(self, waveforms):
        return [str(len(w)) for w in waveforms]

    def describe(self):
        return {"backend": "lengths"}


def test_transcription_cuts_long_clips_and_logs_how_many(tmp_path, caplog):
    manifest = write_corpus(tmp_path, "test", 4)  # 1.0, 1.1, 1.2, 1.3 s at 22,050 Hz
    with caplog.at_level(logging.WARNING):
        transcripts, timing = transcribe_manifest(manifest, LengthBackend(), batch_size=2, progress=False)
    assert transcripts["hypothesis"].astype(int).max() == int(1.2 * RATE)
    assert "1 of 4 utterances are longer than the model's 1.2 s window" in caplog.text
    assert timing["audio_seconds"] == pytest.approx(4.6, abs=0.01)  # the audio as recorded, before cutting
