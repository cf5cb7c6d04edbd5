"""Small data and settings shared by the TEFE tests (tiny widths: the tests run on a shared CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from workflow_scripts.common.config_schema import block_defaults

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# UIT-VSMEC binary: Other + Enjoyment -> neutral; Anger, Disgust, Sadness, Fear -> negative; Surprise dropped.
UIT_VSMEC_BINARY = {
    "Other": "neutral",
    "Enjoyment": "neutral",
    "Anger": "negative",
    "Disgust": "negative",
    "Sadness": "negative",
    "Fear": "negative",
    "Surprise": None,
}

SUBJECTS = ["tôi", "anh ấy", "chị ấy", "mẹ tôi", "bạn tôi", "cô giáo"]
NEUTRAL = ["đi chợ mua rau", "đọc sách ở thư viện", "nấu cơm cho cả nhà", "học tiếng anh", "tưới cây ngoài vườn"]
NEGATIVE = ["rất tức giận vì bị lừa", "buồn lắm vì mất việc", "không chịu nổi tiếng ồn", "thấy chán nản và mệt mỏi"]

# tefe.models.<arch> blocks as the schema fills them (no per-architecture training overrides).
TINY_MODELS = {
    "CNN": {"filters": 4, "kernel_sizes": [2, 3], "dropout": 0.1, "training": {}},
    "LSTM": {"units": 8, "dropout": 0.1, "training": {}},
    "BiLSTM": {"units": 4, "dropout": 0.1, "training": {}},
    "BiLSTM_CNN": {"units": 4, "filters": 4, "kernel_sizes": [2, 3], "dropout": 0.1, "training": {}},
}
# tefe.training, tefe.text and tefe.embedding blocks as the schema fills them, shrunk for the tests.
TINY_TRAINING = block_defaults(
    "tefe.training",
    {"epochs": 3, "patience": 2, "batch_size": 16, "learning_rate": 0.01, "seed": 7, "device": "cpu"},
)
TINY_TEXT = block_defaults("tefe.text", {"max_length": 12})
TINY_EMBEDDING = block_defaults("tefe.embedding", {"dim": 16, "word2vec": {"epochs": 5, "seed": 3}})
# tefe.embedding's key the training reads: the paper's frozen embedding.
FROZEN = {"trainable": False}


def tiny_corpus(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Sentences whose label follows their wording (negative phrases -> negative)."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        negative = i % 2 == 1
        phrases = NEGATIVE if negative else NEUTRAL
        texts.append(f"{SUBJECTS[rng.integers(len(SUBJECTS))]} {phrases[rng.integers(len(phrases))]}")
        labels.append("negative" if negative else "neutral")
    return texts, labels


def write_text_manifest(path: Path, texts: list[str], labels: list[str], split: str) -> Path:
    """A text corpus manifest (utt_id, text, label, split) as the data stage writes it."""
    frame = pd.DataFrame(
        {"utt_id": [f"{split}_{i:04d}" for i in range(len(texts))], "text": texts, "label": labels, "split": split}
    )
    frame.to_csv(path, sep="\t", index=False, quoting=3)
    return path


def write_speech_split(
    directory: Path, split: str, texts: list[str], labels: list[str], hypotheses: list[str] | None = None
) -> tuple[Path, Path]:
    """A speech manifest and its transcripts parquet (utt_id, hypothesis, reference) for one split."""
    ids = [f"utt_{split}_{i:03d}" for i in range(len(texts))]
    manifest = pd.DataFrame(
        {
            "utt_id": ids,
            "audio_path": [f"wav/{u}.wav" for u in ids],
            "duration_s": 1.0,
            "sample_rate": 16000,
            "text": texts,
            "label": labels,
            "split": split,
            "speaker": "s1",
        }
    )
    manifest_path = directory / f"{split}.tsv"
    manifest.to_csv(manifest_path, sep="\t", index=False, quoting=3)
    transcripts = pd.DataFrame({"utt_id": ids, "hypothesis": hypotheses or texts, "reference": texts})
    transcripts_path = directory / f"{split}.parquet"
    transcripts.to_parquet(transcripts_path, index=False)
    return manifest_path, transcripts_path
