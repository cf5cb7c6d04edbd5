"""Transformers speech encoders (WavLM) through the real from_pretrained path, tiny checkpoints."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoModel

from workflow_scripts.common.features import read_features
from workflow_scripts.common.hub import ModelUnavailableError
from workflow_scripts.common.manifest import AudioItems
from workflow_scripts.common.names import SEFE_STATISTICS
from workflow_scripts.sefe.backends import build_backend
from workflow_scripts.sefe.extract import extract_split, feature_metadata
from workflow_scripts.sefe.preprocess import Preprocessing

from sefe_fixtures import PREPROCESSING, tone, write_corpus, write_manifest, write_tiny_wavlm

CONFIG = {"model": None, "layer": "last", "device": "cpu", "batch_size": 4}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    masked = tmp_path_factory.mktemp("wavlm_masked")
    write_tiny_wavlm(masked, attention_mask=True)
    unmasked = tmp_path_factory.mktemp("wavlm_group_norm")
    write_tiny_wavlm(unmasked, attention_mask=False, seed=1)
    return masked, unmasked


def reference_hidden(directory, waveform):
    """Hidden states of one waveform computed directly with transformers."""
    extractor = AutoFeatureExtractor.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory).eval()
    with torch.no_grad():
        out = model(**extractor([waveform], sampling_rate=16000, return_tensors="pt"), output_hidden_states=True)
    return out


def test_layers_and_width(checkpoints):
    directory = checkpoints[0]
    waveform = tone(1.0, 16000)
    reference = reference_hidden(directory, waveform)
    for layer, expected in [
        ("last", reference.last_hidden_state[0]),
        (1, reference.hidden_states[1][0]),
        (-1, reference.hidden_states[-1][0]),
        ("average", torch.stack(reference.hidden_states[1:]).mean(0)[0]),
    ]:
        backend = build_backend("wavlm", {**CONFIG, "model": str(directory), "layer": layer}, 16000, threads=1)
        frames = backend.frames([waveform])[0]
        assert backend.dim == 32 and frames.shape == (49, 32)  # 320-sample stride: 49 frames per second
        np.testing.assert_allclose(frames, expected.numpy(), atol=1e-5)
    assert backend.metadata()["architecture"] == "WavLMModel" and backend.frame_rate_hz == 50.0
    assert torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="sefe.wavlm.layer: 3 is out of range"):
        build_backend("wavlm", {**CONFIG, "model": str(directory), "layer": 3}, 16000)
    with pytest.raises(ValueError, match="expects 16000"):
        build_backend("wavlm", {**CONFIG, "model": str(directory)}, 8000)


@pytest.mark.parametrize("masked", [True, False], ids=["attention-mask", "no-mask"])
def test_batches_equal_one_by_one(checkpoints, masked):
    directory = checkpoints[0] if masked else checkpoints[1]
    backend = build_backend("wavlm", {**CONFIG, "model": str(directory), "layer": "average"}, 16000, threads=1)
    assert backend.masked is masked
    waveforms = [tone(s, 16000, freq=100 + 30 * i, seed=i) for i, s in enumerate([1.0, 0.45, 1.3, 1.0, 0.8])]
    batched = backend.frames(waveforms)
    for waveform, frames in zip(waveforms, batched, strict=True):
        one = backend.frames([waveform])[0]
        assert frames.shape == one.shape == (backend.model._get_feat_extract_output_lengths(len(waveform)), 32)
        np.testing.assert_allclose(frames, one, atol=1e-4, rtol=0)


def test_extraction_writes_pooled_hidden_states(tmp_path, checkpoints):
    directory = checkpoints[0]
    backend = build_backend("wavlm", {**CONFIG, "model": str(directory)}, 16000, threads=1)
    items = write_corpus(tmp_path / "wav", [0.5, 1.2, 0.9])
    manifest = AudioItems(write_manifest(tmp_path / "m.tsv", items))
    settings = Preprocessing.from_config(PREPROCESSING)
    out = tmp_path / "f.parquet"
    extract_split(
        manifest,
        backend,
        settings,
        out,
        feature_metadata(backend, settings, CONFIG, "dev"),
        batch_size=3,
        progress=False,
    )
    ids, matrix, metadata = read_features(out, list(SEFE_STATISTICS))
    assert ids == [u for u, _ in items] and matrix.shape == (3, 4 * 32)
    assert metadata["backend"] == "wavlm" and metadata["layer"] == "last" and metadata["padded_batches"] is True
    from workflow_scripts.sefe.preprocess import load_waveform

    frames = reference_hidden(directory, load_waveform(items[1][1], settings)).last_hidden_state[0].numpy()
    expected = np.concatenate([frames.mean(0), frames.var(0), frames.max(0), frames.min(0)])
    np.testing.assert_allclose(matrix[1], expected, atol=1e-4)


def test_unreachable_hub_fails_fast_with_instructions(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError) as raised:
        build_backend("wavlm", {**CONFIG, "model": "dfat-tests/no-such-wavlm"}, 16000)
    assert time.monotonic() - started < 20
    message = str(raised.value)
    assert "sefe.wavlm.model" in message and "unreachable" in message and "local directory" in message
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="offline mode"):
        build_backend("wavlm", {**CONFIG, "model": "dfat-tests/no-such-wavlm"}, 16000)
