"""The weights-free SEFE backend and the streaming extraction into feature files."""

from __future__ import annotations

import numpy as np
import pytest

from workflow_scripts.common.audio import AudioError
from workflow_scripts.common.features import read_feature_metadata, read_features
from workflow_scripts.common.manifest import AudioItems
from workflow_scripts.common.names import SEFE_STATISTICS
from workflow_scripts.sefe.backends import HandcraftedBackend, build_backend, handcrafted_feature_names
from workflow_scripts.sefe.extract import extract_split, feature_metadata, main, pool_frames
from workflow_scripts.sefe.preprocess import Preprocessing, load_waveform

from rule_job import rule_job
from sefe_fixtures import HANDCRAFTED, PREPROCESSING, tone, write_corpus, write_manifest

SETTINGS = Preprocessing.from_config(PREPROCESSING)


@pytest.fixture(scope="module")
def backend() -> HandcraftedBackend:
    return build_backend("handcrafted", HANDCRAFTED, 16000)


def test_width_follows_the_config():
    assert len(handcrafted_feature_names(HANDCRAFTED)) == 24 + (13 + 1 + 1) * 3
    plain = {**HANDCRAFTED, "delta_order": 0, "energy": False, "f0": {**HANDCRAFTED["f0"], "enabled": False}}
    assert handcrafted_feature_names(plain) == [f"logmel_{i:02d}" for i in range(24)] + [
        f"mfcc_{i:02d}" for i in range(13)
    ]
    small = build_backend("handcrafted", {**plain, "n_mels": 10, "n_mfcc": 5}, 16000)
    frames = small.frames([tone(0.5, 16000)])[0]
    assert small.dim == 15 and frames.shape == (1 + 8000 // 160, 15)


def test_frames_against_direct_computation(backend):
    waveform = tone(1.0, 16000, freq=200.0, amplitude=0.5)
    frames = backend.frames([waveform])[0]
    assert frames.dtype == np.float32 and frames.shape == (1 + 16000 // 160, backend.dim)
    names = backend.names
    # log RMS energy: centred 25 ms frames every 10 ms, zero padded at both ends
    padded = np.pad(waveform.astype(np.float64), 200)
    rms = np.array([np.sqrt(np.mean(padded[i * 160 : i * 160 + 400] ** 2)) for i in range(frames.shape[0])])
    np.testing.assert_allclose(frames[:, names.index("log_energy")], 20 * np.log10(np.maximum(rms, 1e-5)), atol=1e-3)
    # F0 of the glide (200 Hz rising to 240 Hz) in the middle of the tone
    f0 = np.exp(frames[40:60, names.index("log_f0")])
    assert np.all((f0 > 190) & (f0 < 250)), f0
    # deltas: the regression slope over +-4 frames, sum n (c[t+n] - c[t-n]) / (2 sum n^2)
    energy, delta = frames[:, names.index("log_energy")], frames[:, names.index("d_log_energy")]
    slope = [sum(n * (energy[t + n] - energy[t - n]) for n in range(1, 5)) / 60.0 for t in range(4, len(energy) - 4)]
    np.testing.assert_allclose(delta[4:-4], slope, atol=1e-3)


def test_pooled_statistics_equal_numpy(tmp_path, backend):
    items = write_corpus(tmp_path / "wav", [0.4, 1.3, 0.9])
    manifest = AudioItems(write_manifest(tmp_path / "m.tsv", items))
    out = tmp_path / "features.parquet"
    extract_split(
        manifest,
        backend,
        SETTINGS,
        out,
        feature_metadata(backend, SETTINGS, HANDCRAFTED, "train"),
        batch_size=2,
        workers=1,
        progress=False,
    )
    for statistic, reducer in [("mean", np.mean), ("var", np.var), ("max", np.max), ("min", np.min)]:
        ids, matrix, metadata = read_features(out, [statistic])
        assert ids == [u for u, _ in items] and matrix.shape == (3, backend.dim)
        for row, (_, path) in enumerate(items):
            frames = backend.frames([load_waveform(path, SETTINGS)])[0].astype(np.float64)
            np.testing.assert_allclose(matrix[row], reducer(frames, axis=0), rtol=1e-5, atol=1e-4)
    assert metadata["dim"] == backend.dim and metadata["statistics"] == list(SEFE_STATISTICS)
    assert metadata["backend"] == metadata["model"] == "handcrafted"
    assert metadata["checkpoint"] == "none (weights-free)"
    assert metadata["preprocessing"]["sample_rate"] == 16000 and metadata["preprocessing"]["fixed_length_s"] is None
    assert metadata["preprocessing"]["resampler"].startswith("soxr")
    assert metadata["frame_features"] == backend.names and metadata["split"] == "train"
    with pytest.raises(ValueError, match="frames >= 1"):
        pool_frames(np.zeros((0, 4)))


def test_streaming_batching_and_workers_equal_one_by_one(tmp_path, backend):
    items = write_corpus(tmp_path / "wav", [0.3, 1.1, 0.7, 1.6, 0.5, 0.9, 1.2])
    manifest = AudioItems(write_manifest(tmp_path / "m.tsv", items))
    metadata = feature_metadata(backend, SETTINGS, HANDCRAFTED, None)
    runs = {}
    for name, batch_size, workers in [("one", 1, 1), ("batched", 3, 1), ("workers", 2, 2)]:
        path = tmp_path / f"{name}.parquet"
        extract_split(
            manifest, backend, SETTINGS, path, metadata, batch_size=batch_size, workers=workers, progress=False
        )
        runs[name] = read_features(path, list(SEFE_STATISTICS))
    ids, reference, _ = runs["one"]
    for name in ("batched", "workers"):
        assert runs[name][0] == ids
        np.testing.assert_allclose(runs[name][1], reference, atol=1e-4, rtol=0)


def test_corrupt_file_names_file_and_utterance_and_leaves_no_output(tmp_path, backend):
    items = write_corpus(tmp_path / "wav", [0.5, 0.5, 0.5, 0.5, 0.5])
    bad = tmp_path / "wav" / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt this is not audio at all")
    items[3] = ("utt_bad", str(bad))
    manifest = items[:3] + items[4:] + [("utt_bad", str(bad))]  # any (utt_id, path) collection
    out = tmp_path / "features.parquet"
    out.write_bytes(b"an earlier result")
    for workers in (1, 2):
        with pytest.raises(AudioError, match=r"utt_id 'utt_bad': .*broken\.wav: unreadable audio"):
            extract_split(
                manifest,
                backend,
                SETTINGS,
                out,
                feature_metadata(backend, SETTINGS, HANDCRAFTED, None),
                batch_size=2,
                workers=workers,
                progress=False,
            )
        assert out.read_bytes() == b"an earlier result"  # never clobbered
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".features")] == []


def test_entry_point_writes_the_split(tmp_path):
    items = write_corpus(tmp_path / "wav", [0.6, 0.8], sample_rate=44100)
    manifest = write_manifest(tmp_path / "dev.tsv", items)
    out = tmp_path / "sefe" / "dev.parquet"
    main(
        rule_job(
            input={"manifest": str(manifest)},
            output={"features": str(out)},
            params={
                "backend": {**HANDCRAFTED, "delta_order": 1},
                "preprocessing": {**PREPROCESSING, "fixed_length_s": 1.0},
            },
            wildcards={"backend": "handcrafted", "split": "dev"},
            threads=1,
        )
    )
    ids, matrix, metadata = read_features(out, ["mean", "min"])
    assert ids == ["utt000", "utt001"] and metadata["dim"] == 24 + 15 * 2
    assert metadata["preprocessing"]["fixed_length_s"] == 1.0 and metadata["backend_config"]["delta_order"] == 1
    assert read_feature_metadata(out)["split"] == "dev" and np.isfinite(matrix).all()
    # 1.0 s fixed length: 101 frames, the last 0.2-0.4 s are zero padding (log energy floor -100 dB)
    _, minimum, _ = read_features(out, ["min"])
    assert minimum[0, metadata["frame_features"].index("log_energy")] == pytest.approx(-100.0)


def test_backend_config_errors():
    with pytest.raises(ValueError, match="unknown SEFE backend"):
        build_backend("opensmile", {}, 16000)
    with pytest.raises(ValueError, match="frame_length_ms .* too short for fmin"):
        build_backend("handcrafted", {**HANDCRAFTED, "f0": {**HANDCRAFTED["f0"], "frame_length_ms": 20.0}}, 16000)
