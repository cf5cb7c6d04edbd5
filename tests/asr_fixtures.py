"""Small data and models the ASR tests build themselves (no download, no demo corpus needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from workflow_scripts.common.manifest import SPEECH_COLUMNS, write_manifest

SENTENCES = [
    "tôi đi học mỗi ngày",
    "mẹ tôi nấu cơm",
    "hôm nay trời đẹp quá",
    "anh ấy rất tức giận",
    "chị ấy buồn lắm",
    "chúng tôi đọc sách",
]

TINY_WHISPER = {
    "seed": 0,
    "vocab_size": 300,
    "min_frequency": 1,
    "d_model": 32,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "attention_heads": 2,
    "ffn_dim": 64,
    "dropout": 0.1,
    "max_target_positions": 32,
    "num_mel_bins": 40,
    "n_fft": 400,
    "hop_length": 320,
    "chunk_seconds": 2,
    "language": "vi",
    "task": "transcribe",
}


def write_clip(path: Path, seconds: float, seed: int, sample_rate: int = 22050) -> None:
    """A harmonic tone with noise, different for every seed (the models only need some audio)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 110 + 40 * seed % 200
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5)) * 0.2 + rng.normal(0, 0.01, t.size)
    sf.write(path, wave.astype(np.float32), sample_rate, subtype="PCM_16")


def write_corpus(root: Path, split: str, n: int, offset: int = 0) -> Path:
    """A manifest of ``n`` synthetic clips (1-1.8 s, 22,050 Hz) with Vietnamese reference text."""
    rows = []
    (root / "wav").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        seed = offset + i
        path = root / "wav" / f"{split}_{i:03d}.wav"
        seconds = 1.0 + 0.1 * (seed % 9)
        write_clip(path, seconds, seed)
        rows.append(
            {
                "utt_id": f"{split}_{i:03d}",
                "audio_path": str(path),
                "duration_s": seconds,
                "sample_rate": 22050,
                "text": SENTENCES[seed % len(SENTENCES)].capitalize() + ".",
                "label": "neutral",
                "split": split,
                "speaker": f"spk{seed % 2}",
            }
        )
    manifest = root / f"{split}.tsv"
    write_manifest(pd.DataFrame(rows), manifest, SPEECH_COLUMNS)
    return manifest
