"""The prosody F0 trackers (sefe.prosody.f0.tracker): YIN's aperiodicity on public librosa API, and
CREPE (torchcrepe) checked against torchcrepe called directly on a real EmoDB clip."""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pytest

from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.sequences import SequenceFile
from workflow_scripts.sefe import prosody, prosody_f0
from workflow_scripts.sefe.preprocess import Preprocessing, load_waveform

from conftest import shared_data, write_tone
from sefe_fixtures import PREPROCESSING, write_manifest

RATE = 16000
needs_crepe = pytest.mark.skipif(
    find_spec("torchcrepe") is None, reason="torchcrepe is not installed (the `pitch` extra, pyproject.toml)"
)


def f0_block(**values):
    return block_defaults("sefe.prosody.f0", values)


def real_clip() -> np.ndarray:
    """An EmoDB clip (22,050 Hz on disk) as extract_prosody_f0 reads it: 16 kHz, peak-normalised."""
    path = shared_data("speech", "emodb_2s", "wav", "03a01Fa.wav")
    return load_waveform(str(path), Preprocessing.from_config(PREPROCESSING))


def test_yin_aperiodicity_equals_librosas_own_helper_bit_for_bit():
    """The public-API rewrite keeps the demo's voicing (and so its tokens) exactly."""
    import librosa

    pitch = pytest.importorskip("librosa.core.pitch")
    helper = getattr(pitch, "_cumulative_mean_normalized_difference", None)
    if helper is None:
        pytest.skip("this librosa has no private CMND helper to compare with")
    waveform = real_clip()
    frame, hop = 640, 160
    frames = librosa.util.frame(np.pad(waveform, frame // 2), frame_length=frame, hop_length=hop)
    expected = helper(frames, 32, 267).min(axis=0)
    np.testing.assert_array_equal(prosody.yin_aperiodicity(frames, 32, 267), expected)


@needs_crepe
@pytest.mark.parametrize("viterbi", [False, True])
def test_crepe_matches_torchcrepe_called_directly_on_a_real_clip(viterbi, monkeypatch):
    torch = pytest.importorskip("torch")
    torchcrepe = prosody.import_torchcrepe()
    waveform = real_clip()
    cfg = f0_block(tracker="crepe", crepe_viterbi=viterbi)
    f0, voiced = prosody.track_f0(waveform, RATE, cfg)
    np.testing.assert_array_equal(f0, prosody.track_f0(waveform, RATE, cfg)[0])  # no dither: deterministic
    # torchcrepe's own decoding, its random dither (+-20 cents) switched off for the comparison
    monkeypatch.setattr(torchcrepe.convert, "dither", lambda cents: cents)
    monkeypatch.delattr(torchcrepe.decode.weighted_argmax, "weights", raising=False)
    decoder = torchcrepe.decode.viterbi if viterbi else torchcrepe.decode.weighted_argmax
    pitch, periodicity = torchcrepe.predict(
        torch.from_numpy(waveform)[None], RATE, 160, 60.0, 500.0, "tiny", decoder, return_periodicity=True
    )
    pitch, periodicity = pitch[0].numpy(), periodicity[0].numpy()
    # the same frames as yin (the sequence contract): 1 + samples // hop, centred
    assert len(f0) == len(prosody.track_f0(waveform, RATE, f0_block())[0]) == len(pitch) == 1 + len(waveform) // 160
    db = prosody.frame_db(waveform, 640, 160)
    # the same network output and path bins: the same periodicity, so the same voicing decision
    np.testing.assert_array_equal(voiced, (periodicity >= 0.5) & (db > db.max() - 40.0))
    assert 0.2 < voiced.mean() < 0.9  # speech with pauses
    # F0: CREPE's local average around the same path bin, about a bin (20 cents) from torchcrepe's
    # value (its weighted argmax averages sigmoid(salience); its Viterbi returns the bin's centre)
    cents = 1200 * np.abs(np.log2(f0[voiced] / pitch[voiced]))
    assert np.median(cents) < 10.0 and cents.max() < 30.0, (np.median(cents), cents.max())
    assert (f0[~voiced] == 0).all() and (60.0 <= f0[voiced]).all() and (f0[voiced] <= 500.0).all()


@needs_crepe
def test_crepe_tracks_a_tone_and_leaves_silence_unvoiced():
    t = np.arange(RATE) / RATE
    waveform = np.concatenate([0.5 * np.sin(2 * np.pi * 200.0 * t), np.zeros(RATE // 2)]).astype(np.float32)
    f0, voiced = prosody.track_f0(waveform, RATE, f0_block(tracker="crepe"))
    assert len(f0) == 101 + 50 and voiced[5:95].all() and not voiced[110:].any()
    assert np.allclose(f0[5:95], 200.0, rtol=0.01)


def test_crepe_needs_16_khz_and_says_which_key():
    with pytest.raises(ValueError, match="sefe.preprocessing.sample_rate 16000"):
        prosody.track_f0(np.zeros(22050, np.float32), 22050, f0_block(tracker="crepe"))


@needs_crepe
def test_the_f0_rule_records_the_crepe_weights(tmp_path):
    wav = write_tone(tmp_path / "a.wav", seconds=0.5, frequency=150.0)
    manifest = write_manifest(tmp_path / "train.tsv", [("a", str(wav))])
    cfg = f0_block(tracker="crepe", crepe_model="tiny")
    figures = prosody_f0.extract_f0(manifest, tmp_path / "f0.parquet", cfg, PREPROCESSING, "train", threads=1)
    stored = SequenceFile(tmp_path / "f0.parquet")
    assert stored.metadata["checkpoint"].startswith("torchcrepe 0.0.24 tiny.pth")
    assert stored.metadata["model"] == "prosody f0 (crepe)" and figures["voiced_frames"] > 30
