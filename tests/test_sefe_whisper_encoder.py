"""SEFE backend whisper_encoder: a frozen Whisper encoder, frames of the clip's own length.

A tiny random Whisper checks the contract everywhere; the real Whisper base (the `weights`
extra) checks width, frame rate and determinism where it is installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workflow_scripts.sefe.backends import build_backend

from sefe_fixtures import tone
from weights_fixtures import english_clips

CONFIG = {"model": None, "layer": "last", "input_window": "full", "device": "cpu", "batch_size": 4}


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    """A random WhisperModel (d_model 32, 2 layers) with a 4 s window, saved with its feature extractor."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    directory = tmp_path_factory.mktemp("tiny_whisper")
    torch.manual_seed(0)
    extractor = WhisperFeatureExtractor(feature_size=16, chunk_length=4)
    config = WhisperConfig(
        vocab_size=64,
        num_mel_bins=16,
        d_model=32,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=extractor.nb_max_frames // 2,
        max_target_positions=16,
        pad_token_id=0,
        bos_token_id=0,
        eos_token_id=0,
        decoder_start_token_id=1,
    )
    WhisperModel(config).save_pretrained(directory)
    extractor.save_pretrained(directory)
    return directory


def test_frames_cover_the_clip_and_match_the_encoder(tiny_whisper):
    from transformers import WhisperFeatureExtractor, WhisperModel

    backend = build_backend("whisper_encoder", {**CONFIG, "model": str(tiny_whisper)}, 16000, threads=1)
    assert backend.dim == 32 and backend.frame_rate_hz == 50.0
    waves = [tone(1.0, 16000), tone(2.31, 16000, freq=330.0), tone(9.0, 16000)]
    frames = backend.frames(waves)
    assert [f.shape for f in frames] == [(50, 32), (116, 32), (200, 32)]  # ceil(s x 50), at most the 4 s window
    assert all(f.dtype == np.float32 for f in frames)
    extractor = WhisperFeatureExtractor.from_pretrained(tiny_whisper)
    encoder = WhisperModel.from_pretrained(tiny_whisper).get_encoder().eval()
    with torch.no_grad():
        full = encoder(extractor(waves, sampling_rate=16000, return_tensors="pt").input_features).last_hidden_state
    for row, matrix in enumerate(frames):
        np.testing.assert_allclose(matrix, full[row, : len(matrix)].numpy(), atol=1e-5)
    # Batches give what single clips give, and reruns the same.
    np.testing.assert_allclose(backend.frames(waves[1:2])[0], frames[1], atol=1e-5)


@pytest.mark.parametrize("layer", [0, 2, -1, "average"])
def test_layers_and_clip_window(tiny_whisper, layer):
    cfg = {**CONFIG, "model": str(tiny_whisper), "layer": layer, "input_window": "clip"}
    backend = build_backend("whisper_encoder", cfg, 16000, threads=1)
    waves = [tone(1.0, 16000), tone(1.5, 16000), tone(1.0, 16000, freq=440.0)]
    frames = backend.frames(waves)
    assert [f.shape for f in frames] == [(50, 32), (75, 32), (50, 32)]
    for wave, matrix in zip(waves, frames, strict=True):  # equal-length groups reproduce single clips
        np.testing.assert_allclose(backend.frames([wave])[0], matrix, atol=1e-5)


def test_layer_out_of_range(tiny_whisper):
    with pytest.raises(ValueError, match="out of range"):
        build_backend("whisper_encoder", {**CONFIG, "model": str(tiny_whisper), "layer": 5}, 16000)


def test_real_whisper_base_encoder(whisper_base_hf):  # noqa: F811
    """Whisper base: 512-d frames at 50 frames/s for the clip only, deterministic."""
    backend = build_backend("whisper_encoder", {**CONFIG, "model": str(whisper_base_hf)}, 16000, threads=2)
    assert backend.dim == 512 and backend.frame_rate_hz == 50.0 and backend.metadata()["layers"] == 6
    clip = english_clips()[:1]
    first = backend.frames(clip)[0]
    assert first.shape == (int(np.ceil(len(clip[0]) / 320)), 512)
    assert np.isfinite(first).all() and first.std() > 0.1
    np.testing.assert_array_equal(backend.frames(clip)[0], first)
