"""emotion2vec through funasr's real AutoModel path, with a tiny checkpoint the test writes."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from workflow_scripts.common.features import read_features
from workflow_scripts.common.hub import ModelUnavailableError
from workflow_scripts.common.manifest import AudioItems
from workflow_scripts.common.names import SEFE_STATISTICS
from workflow_scripts.sefe.backends import build_backend
from workflow_scripts.sefe.extract import extract_split, feature_metadata
from workflow_scripts.sefe.preprocess import Preprocessing

from sefe_fixtures import PREPROCESSING, tone, write_corpus, write_manifest, write_tiny_emotion2vec

CONFIG = {"model": None, "hub": "ms", "device": "cpu", "batch_size": 4, "stack_equal_lengths": True}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("emotion2vec_tiny")
    state = write_tiny_emotion2vec(directory)
    return directory, state


@pytest.fixture(scope="module")
def backend(checkpoint):
    torch.set_num_threads(2)
    loaded = build_backend("emotion2vec", {**CONFIG, "model": str(checkpoint[0])}, 16000, threads=1)
    assert torch.get_num_threads() == 1  # ncpu from the rule's threads
    return loaded


def test_loads_the_written_weights_through_automodel(backend, checkpoint):
    directory, state = checkpoint
    assert type(backend.model).__name__ == "Emotion2vec" and not backend.model.training
    loaded = backend.model.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    assert backend.dim == 32 and str(directory) in backend.checkpoint


def test_frames_and_pooled_statistics(backend):
    waveform = tone(1.0, 16000)
    direct = backend.auto.generate(waveform, granularity="frame", extract_embedding=True)[0]["feats"]
    frames = backend.frames([waveform])[0]
    assert frames.shape == direct.shape and frames.shape[1] == 32 and 45 <= frames.shape[0] <= 50  # 50 frames/s
    np.testing.assert_allclose(frames, direct, atol=1e-6)
    # utterance granularity is funasr's own mean over the frames
    utterance = backend.auto.generate(waveform, granularity="utterance", extract_embedding=True)[0]["feats"]
    np.testing.assert_allclose(frames.mean(axis=0), utterance, atol=1e-5)


def test_stacked_equal_lengths_equal_generate_one_by_one(backend, monkeypatch):
    waveforms = [tone(1.0, 16000, freq=110 + 20 * i, seed=i) for i in range(3)] + [tone(0.7, 16000, seed=9)]
    calls = []
    for name in ("_stacked", "_generate"):
        original = getattr(backend, name)
        monkeypatch.setattr(backend, name, lambda w, _o=original, _n=name: calls.append((_n, len(w))) or _o(w))
    batched = backend.frames(waveforms)
    monkeypatch.undo()
    assert calls == [("_stacked", 3), ("_generate", 1)]  # three in one forward pass, the odd one alone
    for waveform, frames in zip(waveforms, batched, strict=True):
        one = backend.auto.generate(waveform, granularity="frame", extract_embedding=True)[0]["feats"]
        assert frames.shape == one.shape
        np.testing.assert_allclose(frames, one, atol=1e-4, rtol=0)


def test_extraction_batched_equals_one_by_one(tmp_path, backend):
    items = write_corpus(tmp_path / "wav", [0.8, 1.4, 0.6, 1.0, 1.2])
    manifest = AudioItems(write_manifest(tmp_path / "m.tsv", items))
    settings = Preprocessing.from_config({**PREPROCESSING, "fixed_length_s": 1.0})
    metadata = feature_metadata(backend, settings, CONFIG, "test")
    results = []
    for batch_size in (1, 4):
        out = tmp_path / f"b{batch_size}.parquet"
        extract_split(manifest, backend, settings, out, metadata, batch_size=batch_size, progress=False)
        results.append(read_features(out, list(SEFE_STATISTICS)))
    assert results[0][0] == results[1][0] == [u for u, _ in items]
    np.testing.assert_allclose(results[1][1], results[0][1], atol=1e-4, rtol=0)
    assert results[0][2]["dim"] == 32 and results[0][2]["backend"] == "emotion2vec"
    assert results[0][1].shape == (5, 4 * 32)


def test_unreachable_hub_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_DOMAIN", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms_cache"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    for hub, model in (("ms", "iic/emotion2vec_plus_large"), ("hf", "dfat-tests/no-such-emotion2vec")):
        started = time.monotonic()
        with pytest.raises(ModelUnavailableError) as raised:
            build_backend("emotion2vec", {**CONFIG, "model": model, "hub": hub}, 16000)
        assert time.monotonic() - started < 20
        message = str(raised.value)
        assert "sefe.emotion2vec.model" in message and model in message and "unreachable" in message
        assert "local directory" in message and "config.yaml and model.pt" in message


def test_incomplete_local_directory_is_named(tmp_path):
    (tmp_path / "config.yaml").write_text("model: Emotion2vec\n")
    with pytest.raises(ModelUnavailableError, match=r"lacks \['model.pt'\]"):
        build_backend("emotion2vec", {**CONFIG, "model": str(tmp_path)}, 16000)
    with pytest.raises(ValueError, match="emotion2vec expects 16000"):
        build_backend("emotion2vec", {**CONFIG, "model": str(tmp_path)}, 22050)
