"""Prosody tokens (seed paper 003): F0 contour -> mel scale -> quantized bins + an unvoiced token.

One feature set for the neural fusion heads that ask for it (``graph``), made by three rules, each
with its own step module over this library (so editing one step reruns only its rule):

* ``extract_prosody_f0`` (:mod:`workflow_scripts.sefe.prosody_f0`, one split): F0 and voicing per
  frame (:func:`track_f0`), in the sequence contract (kind ``frames``, dim 2).
* ``fit_prosody_bins`` (:mod:`workflow_scripts.sefe.prosody_bins`): the bin edges in mel, fitted
  on the TRAINING split's F0 file only (:data:`paths.PROSODY_BINS`).
* ``extract_prosody_tokens`` (:mod:`workflow_scripts.sefe.prosody_tokens`, one split): token ids
  per frame (:func:`quantize`).

Here: the F0 tracker, the mel scale, the quantizer, and predict's token extractor (F0 and
quantizer on new audio, as the rules apply them). F0 is tracked on the waveform as SEFE
preprocesses it (``sefe.preprocessing``) by YIN (``librosa.yin``, the pitch tracker of the
handcrafted backend) with a voicing decision: a frame is voiced when YIN's aperiodicity (the
minimum of its cumulative mean normalised difference, computed by librosa's own helper) is below
``voicing_threshold`` and its RMS energy is within ``silence_db`` of the utterance's loudest frame;
or by pYIN (``tracker: pyin``: librosa's voiced flag, slower). Token 0 is the unvoiced token,
voiced frames get ``1 + bin`` (1 .. ``bins``) of their mel value (HTK formula,
2595 log10(1 + f/700)) clipped to the range of the bins.

Deterministic: YIN and the quantizer have no randomness; the same audio gives the same tokens.
"""

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from workflow_scripts.common import paths
from workflow_scripts.common.files import read_json
from workflow_scripts.sefe.extract import load_chunk
from workflow_scripts.sefe.preprocess import Preprocessing

UNVOICED = 0
TRACKERS = ("yin", "pyin")
BINS_FORMAT = "dfat-prosody-bins-1"


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """The HTK mel scale (librosa's Slaney default is linear below 1 kHz, i.e. over all of F0)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def track_f0(waveform: np.ndarray, sample_rate: int, cfg: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """F0 (Hz, 0 where unvoiced) and the voiced flag per frame of ``hop_length_ms``, centred frames."""
    import librosa

    hop = int(round(cfg["hop_length_ms"] * sample_rate / 1000))
    frame = int(round(cfg["frame_length_ms"] * sample_rate / 1000))
    fmin, fmax = float(cfg["fmin"]), float(cfg["fmax"])
    if sample_rate / fmin >= frame / 2:
        raise ValueError(
            f"sefe.prosody.f0: frame_length_ms {cfg['frame_length_ms']} is too short for fmin {fmin} Hz "
            f"(needs more than two periods, > {2000 / fmin:.1f} ms)"
        )
    waveform = np.asarray(waveform, dtype=np.float32)
    # The same search range and framing for both trackers.
    framing = {"fmin": fmin, "fmax": fmax, "sr": sample_rate, "frame_length": frame, "hop_length": hop}
    if cfg["tracker"] == "pyin":
        f0, voiced, _ = librosa.pyin(waveform, **framing, resolution=float(cfg["pyin_resolution"]))
        f0 = np.nan_to_num(f0, nan=0.0)
    else:
        f0 = librosa.yin(waveform, **framing)
        padded = np.pad(waveform, frame // 2)
        frames = librosa.util.frame(padded, frame_length=frame, hop_length=hop)
        min_period, max_period = int(np.floor(sample_rate / fmax)), min(int(np.ceil(sample_rate / fmin)), frame - 1)
        cmnd = librosa.core.pitch._cumulative_mean_normalized_difference(frames, min_period, max_period)
        aperiodicity = np.nan_to_num(cmnd.min(axis=0), nan=1.0)
        rms = librosa.feature.rms(y=waveform, frame_length=frame, hop_length=hop, center=True)[0]
        db = 20.0 * np.log10(np.maximum(rms, 1e-10))
        n = min(len(f0), len(aperiodicity), len(db))
        f0, aperiodicity, db = f0[:n], aperiodicity[:n], db[:n]
        voiced = (aperiodicity < float(cfg["voicing_threshold"])) & (db > db.max() - float(cfg["silence_db"]))
    voiced = np.asarray(voiced, dtype=bool)
    return np.where(voiced, f0, 0.0).astype(np.float32), voiced


def f0_matrices(
    items: Sequence[tuple[str, str]], settings: Preprocessing, cfg: Mapping[str, Any]
) -> Iterator[tuple[list[tuple[str, str]], list[np.ndarray]]]:
    """(utt_id, audio_path) items in chunks of 32, each with its (frames, 2) F0 / voicing matrices."""
    for start in range(0, len(items), 32):
        batch = list(items[start : start + 32])
        matrices = []
        for waveform in load_chunk(batch, settings):
            f0, voiced = track_f0(waveform, settings.sample_rate, cfg)
            matrices.append(np.stack([f0, voiced.astype(np.float32)], axis=1))
        yield batch, matrices


def quantize(matrix: np.ndarray, quantizer: Mapping[str, Any]) -> np.ndarray:
    """Token ids (int64) of one (frames, 2) F0 matrix: 0 unvoiced, 1 + bin for voiced frames."""
    edges = np.asarray(quantizer["edges"], dtype=np.float64)
    lo, hi = quantizer["range_mel"]
    mel = np.clip(hz_to_mel(matrix[:, 0]), lo, hi)
    tokens = 1 + np.searchsorted(edges, mel, side="right")
    return np.where(matrix[:, 1] > 0.5, tokens, UNVOICED).astype(np.int64)


def load_token_extractor(config: Mapping[str, Any], run_dir: str | os.PathLike, threads: int):
    """predict's prosody tokens: ``tokens(audio_paths) -> [matrix (frames, 1)]``, F0 by the run's
    ``sefe.prosody.f0`` and preprocessing, quantized with the run's training-split bins
    (``paths.PROSODY_BINS``), as extract_prosody_f0 / extract_prosody_tokens write them."""
    settings = Preprocessing.from_config(config["sefe"]["preprocessing"])
    cfg = config["sefe"]["prosody"]["f0"]
    quantizer = read_json(paths.in_run(paths.PROSODY_BINS, run_dir))
    if quantizer.get("format") != BINS_FORMAT:
        raise ValueError(f"{paths.in_run(paths.PROSODY_BINS, run_dir)}: not a prosody bins file ({BINS_FORMAT})")

    def tokens(audio_paths: Sequence[str]) -> list[np.ndarray]:
        items = [(str(index), str(path)) for index, path in enumerate(audio_paths)]
        return [
            quantize(m, quantizer)[:, None].astype(np.float32)
            for _, ms in f0_matrices(items, settings, cfg)
            for m in ms
        ]

    return tokens
