"""Silero VAD (workflow_scripts/common/vad.py) for SEFE (sefe.preprocessing.vad) and ASR (asr.transcribe.vad)."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest
import soundfile as sf

from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.names import asr_systems
from workflow_scripts.common.vad import kept_spans, silero, trim_non_speech
from workflow_scripts.sefe.extract import extract_features
from workflow_scripts.sefe.preprocess import Preprocessing, load_waveform, resample

from conftest import shared_data
from sefe_fixtures import write_manifest

# Not imported here: importing silero_vad sets torch's threads to 1 for the whole test session.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("silero_vad") is None, reason="silero-vad (the vad extra) is not installed"
)

ON = block_defaults("sefe.preprocessing.vad", {"enabled": True})


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """A real EmoDB clip at 16 kHz with 0.6 s of silence before and 0.4 s after it."""
    path = sorted((shared_data("speech", "emodb_2s") / "wav").glob("*.wav"))[0]
    samples, rate = sf.read(path, dtype="float32")
    speech = resample(samples, rate, 16000)
    return np.concatenate([np.zeros(9600, np.float32), speech, np.zeros(6400, np.float32)])


def test_loading_the_model_keeps_torch_threads():
    import torch

    before = torch.get_num_threads()
    silero()  # the first import of silero_vad in this process (see pytestmark)
    assert torch.get_num_threads() == before


def test_trim_cuts_at_silero_own_first_start_and_last_end(clip):
    import silero_vad

    stamps = silero_vad.get_speech_timestamps(clip, silero_vad.load_silero_vad(), sampling_rate=16000)
    trimmed = trim_non_speech(clip, 16000, ON)
    np.testing.assert_array_equal(trimmed.waveform, clip[stamps[0]["start"] : stamps[-1]["end"]])
    assert trimmed.speech_found and trimmed.removed_s >= 1.0  # at least the added silence
    assert trimmed.removed_s == pytest.approx((len(clip) - len(trimmed.waveform)) / 16000)


def test_other_rates_are_detected_at_16k_and_cut_at_their_own(clip):
    at_22k = resample(clip, 16000, 22050)
    trimmed = trim_non_speech(at_22k, 22050, ON)
    reference = trim_non_speech(clip, 16000, ON)
    assert trimmed.removed_s == pytest.approx(reference.removed_s, abs=0.002)


def test_no_speech_keeps_the_clip_whole_and_off_touches_nothing():
    silence = np.zeros(16000, np.float32)
    kept = trim_non_speech(silence, 16000, ON)
    assert kept.waveform is silence and not kept.speech_found and kept.removed_s == 0.0
    off = trim_non_speech(silence, 16000, block_defaults("sefe.preprocessing.vad"))
    assert off.waveform is silence and off.removed_s == 0.0


def test_inner_pauses_longer_than_the_limit_are_dropped():
    segments = [(100, 200), (250, 300), (700, 800)]
    assert kept_spans(segments, None) == [(100, 800)]
    assert kept_spans(segments, 100) == [(100, 300), (700, 800)]
    assert kept_spans(segments, 10) == segments


def test_sefe_extraction_trims_before_peak_normalisation_and_logs_the_split(tmp_path, clip, caplog):
    path = tmp_path / "clip.wav"
    sf.write(path, clip, 16000, subtype="FLOAT")
    settings = block_defaults("sefe.preprocessing", {"fixed_length_s": None, "vad": {"enabled": True}})
    expected = trim_non_speech(clip, 16000, ON).waveform
    waveform = load_waveform(path, Preprocessing.from_config(settings))
    np.testing.assert_allclose(waveform, expected / np.abs(expected).max(), rtol=1e-6)

    manifest = write_manifest(tmp_path / "m.tsv", [("u0", str(path))])
    with caplog.at_level(logging.INFO):
        figures = extract_features(
            "handcrafted", block_defaults("sefe.handcrafted"), settings, manifest, tmp_path / "f.parquet", "dev", 1
        )
    assert figures["audio_seconds"] == pytest.approx(len(expected) / 16000, abs=1e-3)
    assert any("VAD dev:" in record.message and "removed from 1 clips" in record.message for record in caplog.records)


def test_asr_vad_per_system_and_at_waveform_load(clip):
    asr = block_defaults(
        "asr", {"systems": [{"name": "plain"}, {"name": "trimmed", "backend": "ct2", "vad": {"enabled": True}}]}
    )
    systems = asr_systems(asr)
    assert systems["plain"]["vad"]["enabled"] is False
    assert systems["trimmed"]["vad"] == ON
    assert len(trim_non_speech(clip, 16000, systems["trimmed"]["vad"]).waveform) < len(clip) - 16000
    assert trim_non_speech(clip, 16000, systems["plain"]["vad"]).waveform is clip


def test_transcribe_hands_the_backend_trimmed_waveforms(tmp_path, clip, caplog):
    from workflow_scripts.asr.backends import AsrBackend
    from workflow_scripts.asr.transcribe import transcribe_manifest

    class Lengths(AsrBackend):
        """Transcribes each waveform as its length in samples."""

        sampling_rate = 16000

        def transcribe(self, waveforms):
            return [str(len(w)) for w in waveforms]

        def describe(self):
            return {}

    path = tmp_path / "clip.wav"
    sf.write(path, clip, 16000, subtype="FLOAT")
    manifest = write_manifest(tmp_path / "m.tsv", [("u0", str(path))])
    vad = block_defaults("asr.transcribe.vad", {"enabled": True})
    with caplog.at_level(logging.INFO):
        trimmed, timing = transcribe_manifest(manifest, Lengths(), 1, progress=False, vad=vad)
    assert any(f"VAD {manifest}:" in record.message for record in caplog.records)
    assert trimmed["hypothesis"].tolist() == [str(len(trim_non_speech(clip, 16000, vad).waveform))]
    assert timing["audio_seconds"] < len(clip) / 16000 - 1.0
    plain, _ = transcribe_manifest(manifest, Lengths(), 1, progress=False, vad=None)
    assert plain["hypothesis"].tolist() == [str(len(clip))]
