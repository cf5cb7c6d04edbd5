"""Model directories are checked against their SHA256SUMS (common/checksums.py): the TF-IDF backend
as the example of a directory written through atomic_path with its record."""

from __future__ import annotations

import numpy as np
import pytest

from workflow_scripts.common.checksums import ChecksumError, record_checksum, verify_checksum
from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.model_files import ModelFileError, load_estimator
from workflow_scripts.tefe.tfidf import MODEL_FILE, SETTINGS_FILE, TfidfBackend

CLASSES = ["neutral", "negative"]
TEXTS = ["tôi rất vui", "hôm nay đẹp trời", "tôi ghét điều này", "buồn quá đi", "xin chào", "khóc mãi"]


@pytest.fixture
def saved(tmp_path):
    backend = TfidfBackend(block_defaults("tefe.tfidf", {"seed": 0}), CLASSES).fit(TEXTS, np.array([0, 0, 1, 1, 0, 1]))
    directory = tmp_path / "model"
    backend.save(directory)
    return backend, directory


def test_a_saved_backend_loads_with_its_record_and_predicts_the_same(saved):
    backend, directory = saved
    assert sorted(p.name for p in directory.iterdir()) == ["SHA256SUMS", MODEL_FILE, SETTINGS_FILE]
    np.testing.assert_array_equal(
        TfidfBackend.load(directory).features(TEXTS)["sentence"], backend.features(TEXTS)["sentence"]
    )
    # Snakemake flags a directory output with a timestamp file after the job: not the model's content.
    (directory / ".snakemake_timestamp").touch()
    verify_checksum(directory)


def test_a_changed_or_added_file_in_a_model_directory_is_refused_naming_it(saved):
    _, directory = saved
    settings = directory / SETTINGS_FILE
    settings.write_text(settings.read_text().replace('"seed": 0', '"seed": 1'))
    with pytest.raises(ChecksumError, match=rf"{settings}: SHA-256 .* recorded in {directory / 'SHA256SUMS'}"):
        TfidfBackend.load(directory)
    record_checksum(directory)
    (directory / "extra.pkl").write_bytes(b"not listed")
    with pytest.raises(ChecksumError, match=r"extra.pkl: not listed in .*SHA256SUMS"):
        verify_checksum(directory)


def test_a_truncated_skops_file_is_a_message_naming_it(saved):
    _, directory = saved
    model = directory / MODEL_FILE
    model.write_bytes(model.read_bytes()[:200])
    with pytest.raises(ChecksumError, match=rf"{model}: SHA-256 .*\(200 bytes now\)"):
        TfidfBackend.load(directory)
    with pytest.raises(ModelFileError, match=rf"{model}: not a readable model file"):
        load_estimator(model, checked=False)


def test_a_file_without_a_record_is_refused(tmp_path):
    path = tmp_path / "weights.json"
    path.write_text("{}")
    with pytest.raises(ChecksumError, match=r"weights.json: no checksum record .*weights.json.sha256"):
        verify_checksum(path)
