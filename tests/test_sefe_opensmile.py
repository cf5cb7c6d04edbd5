"""The openSMILE backends (sefe.backend egemaps / compare) against opensmile called directly, on a real clip."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.features import read_feature_metadata, statistics_to_read, write_features
from workflow_scripts.common.manifest import read_manifest
from workflow_scripts.common.names import FUNCTIONALS, SEFE_STATISTICS
from workflow_scripts.common.sequences import SequenceFile
from workflow_scripts.sefe.evaluate import labelled_features
from workflow_scripts.sefe.extract import extract_features
from workflow_scripts.sefe.frames import extract_frames

from conftest import shared_data
from sefe_fixtures import tone, write_corpus, write_manifest

opensmile = pytest.importorskip("opensmile", reason="the opensmile extra is not installed")

# The EmoDB copy's own rate and samples: what opensmile's process_file reads.
AS_READ = block_defaults("sefe.preprocessing", {"sample_rate": 22050, "peak_normalize": False, "fixed_length_s": None})


def emodb_manifest(tmp_path, count: int = 2):
    """A manifest of the first ``count`` EmoDB clips (skips where ../shared/data is absent)."""
    corpus = shared_data("speech", "emodb_2s")
    clips = sorted((corpus / "wav").glob("*.wav"))[:count]
    items = [(f"u{i}", str(path)) for i, path in enumerate(clips)]
    return write_manifest(tmp_path / "emodb.tsv", items), clips


def smile(feature_set: str, level: str):
    return opensmile.Smile(getattr(opensmile.FeatureSet, feature_set), getattr(opensmile.FeatureLevel, level))


def test_egemaps_functionals_and_llds_of_real_clips_equal_process_file(tmp_path):
    manifest, clips = emodb_manifest(tmp_path)
    features, frames = tmp_path / "egemaps.parquet", tmp_path / "frames.parquet"
    block = block_defaults("sefe.egemaps")
    extract_features("egemaps", block, AS_READ, manifest, features, "train", threads=1)
    extract_frames(manifest, frames, "egemaps", block, AS_READ, split="train", threads=1)

    metadata = read_feature_metadata(features)
    assert metadata["statistics"] == [FUNCTIONALS] and metadata["dim"] == 88
    assert metadata["feature_set"] == "eGeMAPSv02" and len(metadata["frame_features"]) == 25
    labelled = labelled_features(str(features), str(manifest), list(SEFE_STATISTICS), ["neutral", "negative"])
    expected = np.concatenate([smile("eGeMAPSv02", "Functionals").process_file(str(c)).to_numpy() for c in clips])
    np.testing.assert_array_equal(labelled.x, expected.astype(np.float32))

    lld = smile("eGeMAPSv02", "LowLevelDescriptors")
    sequences = SequenceFile(frames)
    for matrix, clip in zip(sequences.read(sequences.positions(["u0", "u1"])), clips, strict=True):
        np.testing.assert_array_equal(matrix, lld.process_file(str(clip)).to_numpy(dtype=np.float32))


def test_compare_widths_and_its_own_statistic(tmp_path):
    items = write_corpus(tmp_path / "wav", [0.6])
    manifest = write_manifest(tmp_path / "m.tsv", items)
    out = tmp_path / "compare.parquet"
    preprocessing = block_defaults("sefe.preprocessing")
    extract_features("compare", block_defaults("sefe.compare"), preprocessing, manifest, out, "dev", 1)
    metadata = read_feature_metadata(out)
    assert metadata["statistics"] == [FUNCTIONALS] and metadata["dim"] == 6373
    assert metadata["feature_set"] == "ComParE_2016" and len(metadata["frame_features"]) == 65
    assert read_manifest(manifest)["utt_id"].tolist() == ["utt000"]


def test_consumers_read_functionals_whole_and_pooled_statistics_as_configured(tmp_path):
    functionals = tmp_path / "f.parquet"
    pooled = tmp_path / "p.parquet"
    write_features(functionals, ["a"], {FUNCTIONALS: np.ones((1, 3), np.float32)}, {})
    write_features(pooled, ["a"], {s: np.ones((1, 3), np.float32) for s in SEFE_STATISTICS}, {})
    assert statistics_to_read(functionals, ["mean", "max"]) == [FUNCTIONALS]
    assert statistics_to_read(pooled, ["mean", "max"]) == ["mean", "max"]


def test_a_missing_opensmile_names_the_extra_and_the_licence(monkeypatch):
    from workflow_scripts.sefe.backends import build_backend

    monkeypatch.setitem(sys.modules, "opensmile", None)  # import opensmile now raises ImportError
    with pytest.raises(ImportError, match=r"dfat-workflow\[opensmile\].*|licence"):
        build_backend("egemaps", block_defaults("sefe.egemaps"), 16000)


def test_frames_of_a_tone_are_llds_at_100_per_second():
    from workflow_scripts.sefe.backends import build_backend

    backend = build_backend("egemaps", block_defaults("sefe.egemaps"), 16000)
    frames = backend.frames([tone(1.0, 16000)])[0]
    assert frames.dtype == np.float32 and frames.shape[1] == backend.dim == 25
    assert abs(frames.shape[0] - 100) <= 10 and backend.frame_rate_hz == 100.0
