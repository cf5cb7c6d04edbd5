"""Synthetic inputs for the fusion stage's tests (and for running the fusion rules before the
SEFE / TEFE stages are merged).

Toy stand-ins for the two encoders, computed from real audio and real text, written through the
feature-file contract (workflow_scripts.common.features):

* ``toy_acoustic_stats``: log band energies of short frames (numpy FFT), pooled to mean / var /
  max / min over frames;
* ``toy_text_stats``: one seeded pseudo-random vector per word (hashed), pooled to mean / var /
  max / min over tokens, plus a ``sentence`` vector (tanh of the mean).

``make_corpus`` writes a small emotion corpus whose two modalities carry the label only
partly (some utterances are spoken with the other class's prosody, some worded neutrally), so
each modality alone is clearly above chance and fusion helps. The factories at the end are
predict's stage hooks built on the same toy encoders.

Command line (features for every split of existing manifests):
    python tests/fusion_synthetic.py features --manifests results/data/speech/demo \
        --acoustic-out 'results/synthetic/acoustic/{split}.parquet' \
        --text-out 'results/synthetic/text/{split}.parquet' [--acoustic-bands 128 --text-dim 1024]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from workflow_scripts.common import paths  # noqa: E402
from workflow_scripts.common.audio import read_audio  # noqa: E402
from workflow_scripts.common.features import write_features  # noqa: E402
from workflow_scripts.common.manifest import read_manifest  # noqa: E402
from workflow_scripts.common.names import ENSEMBLE_FEATURE_SET, primary_system  # noqa: E402

SPLITS = ("train", "dev", "public_test", "private_test")
STATISTICS = ("mean", "var", "max", "min")
NEUTRAL_WORDS = ["hôm", "nay", "trời", "mát", "tôi", "đi", "chợ", "mua", "rau", "nhà", "bàn", "ghế", "sách", "vở"]
NEGATIVE_WORDS = ["buồn", "giận", "tức", "ghét", "khóc", "đau", "mệt", "chán", "sợ", "bực"]


def _pooled(frames: np.ndarray) -> dict[str, np.ndarray]:
    return {"mean": frames.mean(0), "var": frames.var(0), "max": frames.max(0), "min": frames.min(0)}


def toy_acoustic_stats(path: str | Path, bands: int = 16, frame: int = 256) -> dict[str, np.ndarray]:
    """Frame-level log band energies of an audio file, pooled (each statistic of width ``bands``)."""
    samples, _ = read_audio(path)
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    usable = max(frame, len(samples) - len(samples) % frame)
    samples = np.pad(samples, (0, max(0, usable - len(samples))))[:usable]
    spectrum = np.abs(np.fft.rfft(samples.reshape(-1, frame) * np.hanning(frame), axis=1)) ** 2
    edges = np.linspace(0, spectrum.shape[1], bands + 1).astype(int)
    energies = np.stack([spectrum[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    return _pooled(np.log(energies + 1e-8).astype(np.float32))


def _word_vector(word: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(seed).normal(size=dim).astype(np.float32)


def toy_text_stats(text: str, dim: int = 32) -> dict[str, np.ndarray]:
    """Hashed word vectors of a transcript, pooled over tokens, plus a ``sentence`` vector."""
    words = text.lower().split() or ["<empty>"]
    tokens = np.stack([_word_vector(word, dim) for word in words])
    stats = _pooled(tokens)
    stats["sentence"] = np.tanh(tokens.mean(0))
    return stats


def _stack(rows: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.stack([row[name] for row in rows]) for name in rows[0]}


def write_split_features(
    manifest: pd.DataFrame, acoustic_out: str | Path, text_out: str | Path, bands: int = 16, text_dim: int = 32
) -> None:
    """Toy SEFE and TEFE feature files of one manifest (text: the reference transcripts)."""
    ids = manifest["utt_id"].tolist()
    write_features(
        acoustic_out,
        ids,
        _stack([toy_acoustic_stats(p, bands) for p in manifest["audio_path"]]),
        {"model": "toy-log-band-energies", "checkpoint": None, "preprocessing": {"frame": 256}},
    )
    write_features(
        text_out,
        ids,
        _stack([toy_text_stats(t, text_dim) for t in manifest["text"]]),
        {"model": "toy-hashed-words", "checkpoint": None, "preprocessing": {"lowercase": True}},
    )


def make_corpus(
    directory: str | Path, sizes: Mapping[str, int], seed: int = 0, ambiguity: float = 0.35, sample_rate: int = 8000
) -> Path:
    """A small emotion corpus (short tones + Vietnamese word sequences) with a split column.

    Negative utterances are louder and higher-pitched and use negative words, but a share
    ``ambiguity`` of them (independently per modality) looks neutral in that modality, as in the
    demo corpus (negatives worded neutrally, or spoken with neutral prosody): each modality alone
    misses some negatives, and the other modality often catches them.
    Returns the corpus table (TSV: utt_id, audio_path, text, emotion, split, speaker).
    """
    directory = Path(directory)
    (directory / "wav").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for split, size in sizes.items():
        for number in range(size):
            negative = number % 2 == 1
            utt_id = f"{split}_{number:04d}"
            sounds_negative = negative and rng.random() >= ambiguity
            reads_negative = negative and rng.random() >= ambiguity
            duration = rng.uniform(0.2, 0.4)
            t = np.arange(int(duration * sample_rate)) / sample_rate
            pitch = rng.normal(380 if sounds_negative else 150, 25)
            amplitude = rng.uniform(0.35, 0.6) if sounds_negative else rng.uniform(0.15, 0.4)
            wave = amplitude * np.sin(2 * np.pi * pitch * t) + 0.02 * rng.normal(size=len(t))
            sf.write(directory / "wav" / f"{utt_id}.wav", wave.astype(np.float32), sample_rate)
            words = list(rng.choice(NEUTRAL_WORDS, size=rng.integers(3, 7)))
            if reads_negative:
                for position in rng.choice(len(words), size=2, replace=False):
                    words[position] = rng.choice(NEGATIVE_WORDS)
            rows.append(
                {
                    "utt_id": utt_id,
                    "audio_path": f"wav/{utt_id}.wav",
                    "text": " ".join(words),
                    "emotion": "negative" if negative else "neutral",
                    "split": split,
                    "speaker": f"{split}_spk{number % 3}",
                }
            )
    table = directory / "corpus.tsv"
    pd.DataFrame(rows).to_csv(table, sep="\t", index=False)
    return table


def write_corpus_features(
    table: str | Path, acoustic_template: str, text_template: str, bands: int = 16, text_dim: int = 32
) -> None:
    """Toy features of every split of a :func:`make_corpus` table (before any manifest exists)."""
    frame = pd.read_csv(table, sep="\t", quoting=3, dtype=str, keep_default_na=False)
    frame["audio_path"] = [str(Path(table).parent / p) for p in frame["audio_path"]]
    for split, part in frame.groupby("split"):
        write_split_features(
            part, acoustic_template.format(split=split), text_template.format(split=split), bands, text_dim
        )


# --- predict's stage hooks on the toy encoders: factory(config, run_dir, threads) -> function ---


def _trained_widths(run_dir: Path, system: str) -> dict[str, int]:
    """Widths per modality statistic that the run's early-fusion models (of ASR system ``system``) were trained on."""
    where = {"scope": paths.system_scope(system), "feature_set": ENSEMBLE_FEATURE_SET, "classifier": "lr"}
    path = paths.in_run(paths.CLASSIFIER_SUMMARY, run_dir, **where)
    summary = json.loads(path.read_text(encoding="utf-8"))
    return {spec["modality"]: int(spec["statistic_dim"]) for spec in summary["features"]}


def transcripts_from_table(config: Mapping, run_dir: Path, threads: int):
    """A stand-in ASR: the corpus table's transcript of each file (looked up by file name)."""
    corpus = config["corpora"][config["ser_corpus"]]
    frame = pd.read_csv(corpus["table"], sep="\t", quoting=3, dtype=str, keep_default_na=False)
    column = corpus["columns"]["text"]
    by_name = dict(zip((Path(p).name for p in frame[corpus["columns"]["audio_path"]]), frame[column]))
    return lambda paths: [by_name[Path(p).name] for p in paths]


def toy_acoustic_factory(config: Mapping, run_dir: Path, threads: int):
    bands = _trained_widths(run_dir, primary_system(config["asr"]))["acoustic"]
    return lambda paths: _stack([toy_acoustic_stats(p, bands) for p in paths])


def toy_text_factory(config: Mapping, run_dir: Path, threads: int):
    dim = _trained_widths(run_dir, primary_system(config["asr"]))["text"]
    return lambda texts: _stack([toy_text_stats(t, dim) for t in texts])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    features = commands.add_parser("features", help="toy features of every split of existing manifests")
    features.add_argument("--manifests", required=True, help="directory of <split>.tsv speech manifests")
    features.add_argument("--splits", nargs="+", default=list(SPLITS))
    features.add_argument("--acoustic-out", required=True, help="path template with {split}")
    features.add_argument("--text-out", required=True, help="path template with {split}")
    features.add_argument("--acoustic-bands", type=int, default=16)
    features.add_argument("--text-dim", type=int, default=32)
    args = parser.parse_args(argv)
    for split in args.splits:
        manifest = read_manifest(Path(args.manifests) / f"{split}.tsv")
        write_split_features(
            manifest,
            args.acoustic_out.format(split=split),
            args.text_out.format(split=split),
            args.acoustic_bands,
            args.text_dim,
        )
        print(f"{split}: {len(manifest)} utterances")


if __name__ == "__main__":
    main()
