"""Prosody tokens (seed paper 003): F0 contour -> mel scale -> quantized bins + an unvoiced token.

One feature set for the neural fusion heads that ask for it (``graph``), made by three rules, each
with its own step module over this library (so editing one step reruns only its rule):

* ``extract_prosody_f0`` (:mod:`workflow_scripts.sefe.prosody_f0`, one split): F0 and voicing per
  frame (:func:`track_f0`), in the sequence contract (kind ``frames``, dim 2).
* ``fit_prosody_bins`` (:mod:`workflow_scripts.sefe.prosody_bins`): the bin edges in mel, fitted
  on the TRAINING split's F0 file only (:data:`paths.PROSODY_BINS`).
* ``extract_prosody_tokens`` (:mod:`workflow_scripts.sefe.prosody_tokens`, one split): token ids
  per frame (:func:`quantize`).

Here: the F0 trackers, the mel scale, the quantizer, and predict's token extractor (F0 and
quantizer on new audio, as the rules apply them). F0 is tracked on the waveform as SEFE
preprocesses it (``sefe.preprocessing``), every tracker on the same centred frames (one every
``hop_length_ms``, ``1 + samples // hop`` of them), searching ``fmin`` .. ``fmax``:

* ``yin`` (default): ``librosa.yin`` (the pitch tracker of the handcrafted backend) with a voicing
  decision: a frame is voiced when YIN's aperiodicity (the minimum of its cumulative mean
  normalised difference, :func:`yin_aperiodicity`) is below ``voicing_threshold`` and its RMS
  energy is within ``silence_db`` of the utterance's loudest frame;
* ``pyin``: ``librosa.pyin`` and its voiced flag (slower);
* ``crepe``: the CREPE network (torchcrepe, weights ``crepe_model`` tiny or full, on the CPU),
  decoded by weighted argmax or Viterbi (``crepe_viterbi``); a frame is voiced when CREPE's
  periodicity (its confidence in the decoded pitch) reaches ``crepe_periodicity_threshold`` and
  the same energy rule as yin holds (CREPE is confident on low-level noise too).

Token 0 is the unvoiced token, voiced frames get ``1 + bin`` (1 .. ``bins``) of their mel value
(HTK formula, 2595 log10(1 + f/700)) clipped to the range of the bins.

Deterministic: YIN, pYIN's decoding, CREPE's forward pass on the CPU and the quantizer have no
randomness; the same audio gives the same tokens.
"""

import os
import sys
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from workflow_scripts.common import paths
from workflow_scripts.common.files import read_json
from workflow_scripts.sefe.extract import chunked, load_chunk
from workflow_scripts.sefe.preprocess import Preprocessing

UNVOICED = 0
TRACKERS = ("yin", "pyin", "crepe")
# CREPE was trained on 16 kHz audio in 1024-sample windows (torchcrepe.SAMPLE_RATE).
CREPE_SAMPLE_RATE = 16000
# CREPE's pitch bins: 360 of 20 cents from 1997.38 cents (32.70 Hz, cents above 10 Hz), torchcrepe.convert.
CREPE_CENTS_PER_BIN = 20.0
CREPE_BIN0_CENTS = 1997.3794084376191
BINS_FORMAT = "dfat-prosody-bins-1"


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """The HTK mel scale (librosa's Slaney default is linear below 1 kHz, i.e. over all of F0)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def track_f0(waveform: np.ndarray, sample_rate: int, cfg: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """F0 (Hz, 0 where unvoiced) and the voiced flag per frame of ``hop_length_ms``, centred frames."""
    hop = int(round(cfg["hop_length_ms"] * sample_rate / 1000))
    frame = int(round(cfg["frame_length_ms"] * sample_rate / 1000))
    fmin = float(cfg["fmin"])
    if sample_rate / fmin >= frame / 2:
        raise ValueError(
            f"sefe.prosody.f0: frame_length_ms {cfg['frame_length_ms']} is too short for fmin {fmin} Hz "
            f"(needs more than two periods, > {2000 / fmin:.1f} ms)"
        )
    tracker = {"yin": yin_f0, "pyin": pyin_f0, "crepe": crepe_voiced_f0}[cfg["tracker"]]
    f0, voiced = tracker(np.asarray(waveform, dtype=np.float32), sample_rate, frame, hop, cfg)
    voiced = np.asarray(voiced, dtype=bool)
    return np.where(voiced, f0, 0.0).astype(np.float32), voiced


def librosa_framing(sample_rate: int, frame: int, hop: int, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The search range and framing librosa's trackers share."""
    return {
        "fmin": float(cfg["fmin"]),
        "fmax": float(cfg["fmax"]),
        "sr": sample_rate,
        "frame_length": frame,
        "hop_length": hop,
    }


def yin_f0(
    waveform: np.ndarray, sample_rate: int, frame: int, hop: int, cfg: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """YIN's F0 and the aperiodicity + energy voicing decision (YIN itself decides none)."""
    import librosa

    f0 = librosa.yin(waveform, **librosa_framing(sample_rate, frame, hop, cfg))
    frames = librosa.util.frame(np.pad(waveform, frame // 2), frame_length=frame, hop_length=hop)
    fmin, fmax = float(cfg["fmin"]), float(cfg["fmax"])
    min_period, max_period = int(np.floor(sample_rate / fmax)), min(int(np.ceil(sample_rate / fmin)), frame - 1)
    aperiodicity = np.nan_to_num(yin_aperiodicity(frames, min_period, max_period), nan=1.0)
    db = frame_db(waveform, frame, hop)
    n = min(len(f0), len(aperiodicity), len(db))
    f0, aperiodicity, db = f0[:n], aperiodicity[:n], db[:n]
    return f0, (aperiodicity < float(cfg["voicing_threshold"])) & loud(db, float(cfg["silence_db"]))


def pyin_f0(
    waveform: np.ndarray, sample_rate: int, frame: int, hop: int, cfg: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """pYIN's F0 and its own voiced flag."""
    import librosa

    framing = librosa_framing(sample_rate, frame, hop, cfg)
    f0, voiced, _ = librosa.pyin(waveform, **framing, resolution=float(cfg["pyin_resolution"]))
    return np.nan_to_num(f0, nan=0.0), voiced


def crepe_voiced_f0(
    waveform: np.ndarray, sample_rate: int, frame: int, hop: int, cfg: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """CREPE's F0, voiced where its periodicity reaches the threshold and the energy rule holds."""
    f0, periodicity = crepe_f0(waveform, sample_rate, hop, cfg)
    db = frame_db(waveform, frame, hop)
    n = min(len(f0), len(periodicity), len(db))
    f0, periodicity, db = f0[:n], periodicity[:n], db[:n]
    return f0, (periodicity >= float(cfg["crepe_periodicity_threshold"])) & loud(db, float(cfg["silence_db"]))


def frame_db(waveform: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """RMS energy (dB) per centred frame."""
    import librosa

    rms = librosa.feature.rms(y=waveform, frame_length=frame, hop_length=hop, center=True)[0]
    return 20.0 * np.log10(np.maximum(rms, 1e-10))


def loud(db: np.ndarray, silence_db: float) -> np.ndarray:
    """Frames within ``silence_db`` dB of the loudest one (the energy half of the voicing decision)."""
    return db > db.max() - silence_db


def yin_aperiodicity(frames: np.ndarray, min_period: int, max_period: int) -> np.ndarray:
    """YIN's aperiodicity per frame: the minimum over periods ``min_period .. max_period`` of the
    cumulative mean normalised difference (de Cheveigne & Kawahara 2002, eq. 8) of ``frames``
    (frame_length, n_frames).

    The arithmetic of ``librosa.yin`` step for step, on librosa's public ``autocorrelate`` and
    ``util.tiny`` (its own helper is private), so the values equal those librosa.yin thresholds.
    """
    import librosa

    acf = librosa.autocorrelate(frames, max_size=max_period + 1, axis=-2)
    difference = np.square(frames)
    np.cumsum(difference, out=difference, axis=-2)
    # d(k) = 2 (ACF(0) - ACF(k)) - sum_{m<k} y(m)^2
    k = slice(1, max_period + 1)
    difference[..., 0, :] = 0
    difference[..., k, :] = 2 * (acf[..., 0:1, :] - acf[..., k, :]) - difference[..., : k.stop - 1, :]
    numerator = difference[..., min_period : max_period + 1, :]
    cumulative_mean = np.cumsum(difference[..., k, :], axis=-2) / np.r_[k][:, None]
    denominator = cumulative_mean[..., min_period - 1 : max_period, :]
    return (numerator / (denominator + librosa.util.tiny(denominator))).min(axis=0)


def import_torchcrepe() -> types.ModuleType:
    """torchcrepe, which imports torchaudio only for its file loader (never used here).

    PyPI's torchaudio fails at import beside the CPU torch (docs/sefe.md): where it cannot be
    imported, an empty stand-in lets torchcrepe import and is removed again at once, so no other
    code sees it.
    """
    stand_in = None
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError):
        stand_in = sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    try:
        import torchcrepe
    except ImportError as error:
        raise ImportError(
            "sefe.prosody.f0.tracker: crepe needs torchcrepe==0.0.24 and resampy==0.4.3 "
            "(pip install --no-deps torchcrepe==0.0.24 resampy==0.4.3; the `pitch` extra)"
        ) from error
    finally:
        if stand_in is not None and sys.modules.get("torchaudio") is stand_in:
            del sys.modules["torchaudio"]
    return torchcrepe


def crepe_f0(waveform: np.ndarray, sample_rate: int, hop: int, cfg: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """CREPE's F0 (Hz) and periodicity per centred frame of ``hop`` samples.

    torchcrepe frames the audio and runs the network (its ``preprocess`` and ``infer``, as its
    ``predict`` does); the pitch path (argmax, or Viterbi over the whole utterance by
    torchcrepe's decoder) is decoded here without torchcrepe's dither, which draws from numpy's
    unseeded global generator: the same audio gives the same F0 (:func:`decode_crepe`).
    """
    import torch

    if sample_rate != CREPE_SAMPLE_RATE:
        raise ValueError(
            f"sefe.prosody.f0.tracker: crepe needs sefe.preprocessing.sample_rate {CREPE_SAMPLE_RATE} "
            f"(CREPE's rate), got {sample_rate}"
        )
    torchcrepe = import_torchcrepe()
    audio = torch.from_numpy(np.asarray(waveform, dtype=np.float32))[None]
    with torch.inference_mode():
        batches = torchcrepe.preprocess(audio, sample_rate, hop, int(cfg["crepe_batch_frames"]), "cpu", pad=True)
        salience = torch.cat([torchcrepe.infer(frames, cfg["crepe_model"]) for frames in batches])
    return decode_crepe(salience, float(cfg["fmin"]), float(cfg["fmax"]), bool(cfg["crepe_viterbi"]))


def decode_crepe(salience, fmin: float, fmax: float, viterbi: bool) -> tuple[np.ndarray, np.ndarray]:
    """F0 (Hz) and periodicity of CREPE's salience (frames, 360 pitch bins of 20 cents), as CREPE decodes.

    The path bin per frame is the argmax, or the Viterbi path (torchcrepe.decode.viterbi's bins),
    within ``fmin`` .. ``fmax``; F0 is the salience-weighted mean of the cents of the path bin and
    its four neighbours on each side (CREPE's local average); periodicity is the salience of the
    path bin (torchcrepe.core.periodicity).
    """
    import torch

    torchcrepe = import_torchcrepe()
    convert = torchcrepe.convert
    low = int(convert.frequency_to_bins(torch.tensor(fmin)))
    high = int(convert.frequency_to_bins(torch.tensor(fmax), torch.ceil))
    in_range = torch.zeros(torchcrepe.PITCH_BINS, dtype=torch.bool)
    in_range[low:high] = True
    masked = salience.masked_fill(~in_range, -float("inf"))
    if viterbi:
        bins = torchcrepe.decode.viterbi(masked.T[None])[0][0]
    else:
        bins = masked.argmax(dim=1)
    periodicity = salience.gather(1, bins[:, None])[:, 0]
    neighbours = bins[:, None] + torch.arange(-4, 5)
    inside = (neighbours >= 0) & (neighbours < torchcrepe.PITCH_BINS)
    neighbours = neighbours.clamp(0, torchcrepe.PITCH_BINS - 1)
    weights = torch.where(inside & in_range[neighbours], salience.gather(1, neighbours), 0.0)
    cents = CREPE_CENTS_PER_BIN * neighbours.double() + CREPE_BIN0_CENTS
    mean_cents = (weights * cents).sum(dim=1) / weights.sum(dim=1).clamp_min(1e-12)
    f0 = 10.0 * 2.0 ** (mean_cents / 1200.0)
    return f0.numpy(), periodicity.numpy()


def tracker_checkpoint(cfg: Mapping[str, Any]) -> str:
    """What an F0 file records as its checkpoint: the CREPE weights and torchcrepe's version, or none."""
    if cfg["tracker"] != "crepe":
        return "none (weights-free)"
    from importlib.metadata import version

    return f"torchcrepe {version('torchcrepe')} {cfg['crepe_model']}.pth"


def f0_matrices(
    items: Iterable[tuple[str, str]], settings: Preprocessing, cfg: Mapping[str, Any]
) -> Iterator[tuple[list[tuple[str, str]], list[np.ndarray]]]:
    """(utt_id, audio_path) items in chunks of 32, each with its (frames, 2) F0 / voicing matrices."""
    for batch in chunked(items, 32):
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
