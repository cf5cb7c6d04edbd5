"""Prosody tokens (seed paper 003): F0 contour -> mel scale -> quantized bins + an unvoiced token.

Three rules, one feature set for the neural fusion heads that ask for it (``graph``):

* ``extract_prosody_f0`` (one split): the waveform as SEFE preprocesses it
  (``sefe.preprocessing``) -> F0 per frame by YIN (``librosa.yin``, the pitch tracker of the
  handcrafted backend) with a voicing decision: a frame is voiced when YIN's aperiodicity (the
  minimum of its cumulative mean normalised difference, computed by librosa's own helper) is
  below ``voicing_threshold`` and its RMS energy is within ``silence_db`` of the utterance's
  loudest frame; or by pYIN (``tracker: pyin``: librosa's voiced flag, slower). Written in the
  sequence contract (:mod:`workflow_scripts.common.sequences`, kind ``frames``, dim 2:
  ``f0_hz`` (0 where unvoiced) and ``voiced`` (0 / 1)).
* ``fit_prosody_bins``: reads the TRAINING split's F0 file only and writes the bin edges
  (:data:`paths.PROSODY_BINS`): F0 of voiced frames -> mel (HTK formula, 2595 log10(1 + f/700)),
  clipped to ``range_hz``; ``method: quantile`` puts the ``bins - 1`` inner edges at the
  training frames' quantiles (every bin holds about as many training frames), ``uniform``
  spaces them evenly in mel over ``range_hz`` (nothing learnt from data, still recorded).
* ``extract_prosody_tokens`` (one split): F0 file + edges -> token ids per frame (kind
  ``tokens``, dim 1, the id as a float32): 0 is the unvoiced token, voiced frames get
  ``1 + bin`` (1 .. ``bins``); values beyond the training range fall into the end bins. The
  vocabulary (``bins + 1``) and the edges file are recorded in the metadata.

Deterministic: YIN and the quantizer have no randomness; the same audio gives the same tokens.
"""

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from workflow_scripts.common import paths
from workflow_scripts.common.files import read_json, write_json
from workflow_scripts.common.manifest import read_manifest
from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.sequences import SequenceFile, SequenceWriter
from workflow_scripts.sefe.extract import load_chunk
from workflow_scripts.sefe.preprocess import Preprocessing

log = logging.getLogger(__name__)

UNVOICED = 0
TRACKERS = ("yin", "pyin")
METHODS = ("quantile", "uniform")
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


def extract_f0(
    manifest_path: str | os.PathLike,
    output: str | os.PathLike,
    cfg: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
    split: str | None = None,
) -> dict[str, Any]:
    """F0 and voicing of every utterance of a manifest, written as (frames, 2) matrices."""
    settings = Preprocessing.from_config(preprocessing)
    manifest = read_manifest(manifest_path)
    items = list(zip(manifest["utt_id"].astype(str), manifest["audio_path"].astype(str), strict=True))
    metadata = {
        "model": f"prosody f0 ({cfg['tracker']})",
        "checkpoint": "none (weights-free)",
        "columns": ["f0_hz", "voiced"],
        "frame_rate_hz": 1000.0 / float(cfg["hop_length_ms"]),
        "f0": dict(cfg),
        "preprocessing": settings.as_metadata(),
        "split": split,
    }
    started, frames, voiced_frames = time.perf_counter(), 0, 0
    with SequenceWriter(output, 2, "frames", metadata) as writer:
        for batch, matrices in f0_matrices(items, settings, cfg):
            frames += sum(len(m) for m in matrices)
            voiced_frames += int(sum(m[:, 1].sum() for m in matrices))
            writer.write([u for u, _ in batch], matrices)
    figures = {
        "utterances": len(items),
        "frames": frames,
        "voiced_frames": voiced_frames,
        "seconds": round(time.perf_counter() - started, 3),
    }
    log.info("wrote %s: %s", output, figures)
    return figures


def voiced_mel(matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Mel values of the voiced frames of (frames, 2) F0 matrices, concatenated."""
    parts = [hz_to_mel(m[m[:, 1] > 0.5, 0]) for m in matrices]
    return np.concatenate(parts) if parts else np.zeros(0)


def fit_bins(train_matrices: Sequence[np.ndarray], cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The quantizer (inner edges in mel) fitted on the training split's F0 matrices."""
    bins, method = int(cfg["bins"]), cfg["method"]
    low, high = (float(v) for v in cfg["range_hz"])
    if bins < 1 or not 0 < low < high or method not in METHODS:
        raise ValueError(
            f"sefe.prosody.quantizer: bins {bins} (>= 1), range_hz {[low, high]} (0 < low < high), "
            f"method {method!r} (one of {METHODS})"
        )
    lo, hi = float(hz_to_mel(low)), float(hz_to_mel(high))
    values = np.clip(voiced_mel(train_matrices), lo, hi)
    if method == "uniform":
        edges = np.linspace(lo, hi, bins + 1)[1:-1]
    else:
        if len(values) == 0:
            raise ValueError("sefe.prosody.quantizer: the training split has no voiced frame to fit quantile bins on")
        edges = np.quantile(values, np.arange(1, bins) / bins)
    return {
        "format": BINS_FORMAT,
        "bins": bins,
        "method": method,
        "scale": "mel (HTK: 2595 log10(1 + f / 700))",
        "range_hz": [low, high],
        "range_mel": [lo, hi],
        "edges": [float(e) for e in edges],
        "unvoiced_id": UNVOICED,
        "vocabulary_size": bins + 1,
        "voiced_frames": int(len(values)),
        "frames": int(sum(len(m) for m in train_matrices)),
        "utterances": len(train_matrices),
    }


def quantize(matrix: np.ndarray, quantizer: Mapping[str, Any]) -> np.ndarray:
    """Token ids (int64) of one (frames, 2) F0 matrix: 0 unvoiced, 1 + bin for voiced frames."""
    edges = np.asarray(quantizer["edges"], dtype=np.float64)
    lo, hi = quantizer["range_mel"]
    mel = np.clip(hz_to_mel(matrix[:, 0]), lo, hi)
    tokens = 1 + np.searchsorted(edges, mel, side="right")
    return np.where(matrix[:, 1] > 0.5, tokens, UNVOICED).astype(np.int64)


def write_tokens(
    f0_path: str | os.PathLike, quantizer: Mapping[str, Any], output: str | os.PathLike, bins_path: str
) -> dict[str, Any]:
    """Token files of one split from its F0 file and the training split's quantizer."""
    f0 = SequenceFile(f0_path)
    metadata = {
        "model": "prosody tokens",
        "checkpoint": "none (weights-free)",
        "vocabulary_size": int(quantizer["vocabulary_size"]),
        "unvoiced_id": UNVOICED,
        "bins": int(quantizer["bins"]),
        "method": quantizer["method"],
        "bins_file": str(bins_path),
        "frame_rate_hz": f0.metadata.get("frame_rate_hz"),
        "split": f0.metadata.get("split"),
    }
    counts = np.zeros(int(quantizer["vocabulary_size"]), dtype=np.int64)
    with SequenceWriter(output, 1, "tokens", metadata) as writer:
        for start in range(0, len(f0), 256):
            positions = np.arange(start, min(start + 256, len(f0)))
            tokens = [quantize(m, quantizer) for m in f0.read(positions)]
            counts += np.bincount(np.concatenate(tokens), minlength=len(counts))
            writer.write([f0.utt_ids[p] for p in positions], [t[:, None].astype(np.float32) for t in tokens])
    figures = {"utterances": len(f0), "unvoiced_share": round(float(counts[0] / max(1, counts.sum())), 4)}
    figures["bins_used"] = int((counts[1:] > 0).sum())
    log.info("wrote %s: %s", output, figures)
    return figures


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


def _extract_prosody_f0(job: Any) -> None:
    extract_f0(job.input.manifest, job.output.f0, job.params.f0, job.params.preprocessing, job.wildcards.split)


def _fit_prosody_bins(job: Any) -> None:
    train = SequenceFile(job.input.f0)
    quantizer = fit_bins(train.read(np.arange(len(train))), job.params.quantizer)
    quantizer["fitted_on"] = {"split": job.params.train_split, "file": str(job.input.f0)}
    write_json(job.output.bins, quantizer)
    log.info("prosody bins: %s", {k: v for k, v in quantizer.items() if k != "edges"})


def _extract_prosody_tokens(job: Any) -> None:
    write_tokens(job.input.f0, read_json(job.input.bins), job.output.tokens, str(job.input.bins))


RULES = {
    "extract_prosody_f0": _extract_prosody_f0,
    "fit_prosody_bins": _fit_prosody_bins,
    "extract_prosody_tokens": _extract_prosody_tokens,
}


def main(job: Any) -> None:
    """Entry point of the extract_prosody_f0, fit_prosody_bins and extract_prosody_tokens rules."""
    if job.rule not in RULES:
        raise ValueError(f"sefe/prosody.py runs the rules {sorted(RULES)}, not {job.rule!r}")
    RULES[job.rule](job)


if __name__ == "__main__":
    run_rule(main)
