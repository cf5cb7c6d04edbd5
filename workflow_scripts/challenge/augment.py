"""Emotion-driven augmentation of the acoustic training data (VLSP 2025 practice).

The challenge's teams changed the speed of angry speech, scaled volume for intensity, shifted
pitch and added real-world noise. Here each TRAINING utterance gets ``copies`` augmented copies,
each with settings drawn (seeded, per copy) from its class's ranges in
``challenge.augmentation.classes``: a speed factor (Kaldi-style resampling,
asr/speed_perturb.py), a gain in dB, a pitch shift in semitones (librosa, duration kept) and
additive noise at a signal-to-noise ratio in dB (pink noise generated from the seed: no noise
corpus ships with the workflow). A range [a, a] fixes a setting; ``null`` leaves it out.

Only rows of the training split are read (any other split in the manifest is an error), so no
dev or test audio can enter training. A copy keeps its original's label, text and speaker
(cross-validation keeps it in its original's fold) and gets the id
``<utt_id><names.AUGMENTED_ID_MARK><k>``.
"""

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from workflow_scripts.asr.speed_perturb import speed_perturb
from workflow_scripts.common.audio import read_audio
from workflow_scripts.common.checksums import sha256_file
from workflow_scripts.common.files import atomic_path, write_json
from workflow_scripts.common.manifest import (
    AUDIO_SHA256,
    INGESTED_SPEECH_COLUMNS,
    read_manifest,
    utt_file,
    write_manifest,
)
from workflow_scripts.common.names import AUGMENTED_ID_MARK
from workflow_scripts.common.rule import run_rule

log = logging.getLogger(__name__)

SETTINGS = ("speed", "volume_db", "pitch_semitones", "noise_snr_db")


def draw_settings(ranges: Mapping[str, Sequence[float] | None], rng: np.random.Generator) -> dict[str, float | None]:
    """One copy's settings: a uniform draw from each range of a class's block (None where the range is null)."""
    drawn: dict[str, float | None] = {}
    for name in SETTINGS:
        bounds = ranges[name]
        drawn[name] = None if bounds is None else float(rng.uniform(float(bounds[0]), float(bounds[1])))
    return drawn


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS pink (1/f) noise of ``n`` samples, shaped from white noise in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1.0))
    noise = np.fft.irfft(spectrum, n)
    return (noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)).astype(np.float32)


def augment_waveform(
    samples: np.ndarray, rate: int, settings: Mapping[str, float | None], rng: np.random.Generator
) -> np.ndarray:
    """``samples`` (mono) with speed, pitch, gain and noise applied in that order; clipped to [-1, 1]."""
    out = np.asarray(samples, dtype=np.float32)
    if settings.get("speed") is not None:
        out = speed_perturb(out, float(settings["speed"]), rate)
    if settings.get("pitch_semitones"):
        import librosa

        out = librosa.effects.pitch_shift(out, sr=rate, n_steps=float(settings["pitch_semitones"])).astype(np.float32)
    if settings.get("volume_db") is not None:
        out = out * np.float32(10.0 ** (float(settings["volume_db"]) / 20.0))
    if settings.get("noise_snr_db") is not None:
        power = float(np.mean(out**2))
        if power > 0:
            scale = np.sqrt(power / 10.0 ** (float(settings["noise_snr_db"]) / 10.0))
            out = out + np.float32(scale) * pink_noise(len(out), rng)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def augment_manifest(
    manifest: pd.DataFrame, block: Mapping[str, Any], train_split: str, wav_dir: Path, source: str
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Write ``block["copies"]`` augmented copies of every utterance to ``wav_dir``: their manifest rows
    and a record of each copy's settings. ``manifest`` must hold the training split only."""
    foreign = sorted(set(manifest["split"]) - {train_split})
    if foreign:
        raise ValueError(
            f"{source}: rows of split(s) {foreign}; augmentation reads the training split {train_split!r} only"
        )
    classes = block["classes"]
    missing = sorted(set(manifest["label"]) - set(classes))
    if missing:
        raise ValueError(f"challenge.augmentation.classes: no settings for the label(s) {missing} of {source}")
    rng = np.random.default_rng(int(block["seed"]))
    rows, record = [], []
    for row in manifest.itertuples(index=False):
        samples, rate = read_audio(row.audio_path)
        if samples.ndim == 2:
            samples = samples.mean(axis=1)
        for copy in range(int(block["copies"])):
            settings = draw_settings(classes[row.label], rng)
            augmented = augment_waveform(samples, rate, settings, rng)
            utt_id = f"{row.utt_id}{AUGMENTED_ID_MARK}{copy + 1}"
            path = utt_file(wav_dir, utt_id, ".wav")
            sf.write(path, augmented, rate, subtype="PCM_16")
            rows.append(
                {
                    **row._asdict(),
                    "utt_id": utt_id,
                    "audio_path": str(path),
                    "duration_s": len(augmented) / rate,
                    "sample_rate": rate,
                    AUDIO_SHA256: sha256_file(path),
                }
            )
            record.append({"utt_id": utt_id, "source": row.utt_id, "label": row.label, **settings})
    return pd.DataFrame(rows, columns=INGESTED_SPEECH_COLUMNS), record


def main(job: Any) -> None:
    """Entry point of the augment_training_audio rule (``job``: the rule's ``snakemake`` object)."""
    manifest = read_manifest(job.input.manifest)
    with atomic_path(job.output.wav_dir, is_dir=True) as wav_dir:
        wav_dir.mkdir(parents=True, exist_ok=True)
        copies, record = augment_manifest(
            manifest, job.params.augmentation, job.params.train_split, wav_dir, job.input.manifest
        )
    # The files now live under the final directory name.
    copies["audio_path"] = [str(Path(job.output.wav_dir) / Path(p).name) for p in copies["audio_path"]]
    write_manifest(copies, job.output.manifest, INGESTED_SPEECH_COLUMNS)
    write_json(job.output.record, {"source": str(job.input.manifest), "copies": record})
    log.info("%d augmented copies of %d training utterances -> %s", len(copies), len(manifest), job.output.manifest)


if __name__ == "__main__":
    run_rule(main)
