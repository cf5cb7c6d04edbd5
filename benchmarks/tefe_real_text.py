"""Every text-branch option on real Vietnamese text: dev WA / UA / WF1 and time.

Corpora (read from ../shared/data/text, never copied into the project; binary neutral vs negative):

* UIT-VSMEC: Other + Enjoyment -> neutral; Anger, Disgust, Sadness, Fear -> negative; Surprise
  dropped; train -> valid as dev.
* VLSP 2016 sentiment: negative vs neutral (positive dropped), a seeded stratified 90/10 split
  of its train file (train -> dev).

Options: the TF-IDF backend (word, char, word + char), and the neural encoders (CNN / LSTM /
BiLSTM / BiLSTM_CNN) over word2vec or FastText embeddings, frozen or trainable, with
length-bucketed batches (``--neural`` picks which; they take minutes per epoch at the paper's
widths on a CPU, so ``--dim`` / ``--units`` shrink them). Only the training split fits anything;
dev is scored after each epoch (early stopping) and reported.

    python -m benchmarks.tefe_real_text                       # TF-IDF options only (seconds)
    python -m benchmarks.tefe_real_text --neural CNN:word2vec CNN:fasttext LSTM:fasttext --epochs 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workflow_scripts.common.config_schema import block_defaults
from workflow_scripts.common.labels import encode_labels
from workflow_scripts.data.ingest_text import build_text_manifest
from workflow_scripts.tefe.train import split_scores

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.tefe_fixtures import UIT_VSMEC_BINARY  # noqa: E402

CLASSES = ["neutral", "negative"]
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "text"
CORPORA: dict[str, dict[str, Any]] = {
    "uit_vsmec": {
        "table": {"train": "uit_vsmec/train.tsv", "dev": "uit_vsmec/valid.tsv"},
        "columns": {"text": "text", "label": "emotion"},
        "label_map": UIT_VSMEC_BINARY,
        "split": {"policy": "table"},
    },
    "vlsp2016": {
        "table": "vlsp2016_sentiment/train.tsv",
        "columns": {"text": "text", "label": "sentiment"},
        "label_map": {"negative": "negative", "neutral": "neutral", "positive": None},
        "split": {"policy": "stratified", "fractions": {"train": 0.9, "dev": 0.1}},
    },
}
TFIDF_OPTIONS = {
    "TF-IDF word 1-2": {"char_ngrams": None},
    "TF-IDF char_wb 2-5": {"word_ngrams": None},
    "TF-IDF word 1-2 + char_wb 2-5 (backend default)": {},
}


def load_corpus(name: str, data: Path = DATA, seed: int = 42) -> dict[str, tuple[list[str], np.ndarray]]:
    """split -> (texts, class indices) of one benchmark corpus (train and dev)."""
    spec = dict(CORPORA[name])
    table = spec["table"]
    spec["table"] = {k: str(data / v) for k, v in table.items()} if isinstance(table, dict) else str(data / table)
    manifest, _, _ = build_text_manifest(block_defaults("text_corpus", spec), CLASSES, ["train", "dev"], seed=seed)
    out = {}
    for split in ("train", "dev"):
        part = manifest[manifest["split"] == split]
        out[split] = (part["text"].tolist(), encode_labels(part["label"].tolist(), CLASSES, split))
    return out


def run_tfidf(data, config: dict[str, Any]) -> dict[str, float]:
    """Fit the TF-IDF backend on train, score dev."""
    from workflow_scripts.tefe.tfidf import TfidfBackend

    backend = TfidfBackend(block_defaults("tefe.tfidf", config), CLASSES).fit(*data["train"])
    return split_scores(data["dev"][1], backend.predict(data["dev"][0]), len(CLASSES))


def run_neural(data, arch: str, source: str, args: argparse.Namespace) -> dict[str, float]:
    """Embedding from the training split, then one architecture with early stopping on dev."""
    from workflow_scripts.tefe.embedding import build_embedding
    from workflow_scripts.tefe.train import train_encoder

    text = {"tokenizer": args.tokenizer, "max_length": args.max_length, "punctuation": "keep"}
    text = block_defaults("tefe.text", text)
    embedding = block_defaults(
        "tefe.embedding",
        {"dim": args.dim, "source": source.removesuffix("+trainable"), "trainable": source.endswith("+trainable")},
    )
    vocab, matrix, _ = build_embedding(data["train"][0], text, embedding)
    models = {
        "CNN": {"filters": args.units // 4, "training": {}},
        "LSTM": {"units": args.units, "training": {}},
        "BiLSTM": {"units": args.units // 2, "training": {}},
        "BiLSTM_CNN": {"units": args.units // 2, "filters": args.units // 4, "training": {}},
    }
    training = {
        "epochs": args.epochs,
        "patience": 2,
        "min_delta": 0.0,
        "batch_size": 64,
        "learning_rate": 1.0e-3,
        "weight_decay": 0.0,
        "grad_clip": 5.0,
        "class_weights": "balanced",
        "monitor": "UA",
        "seed": 42,
        "device": "cpu",
        "eval_batch_size": 256,
        "length_buckets": not args.no_buckets,
        "threads": 1,
    }
    _, metrics = train_encoder(
        arch, vocab, matrix, data["train"], data["dev"], CLASSES, models[arch], training, embedding
    )
    seconds = [row["seconds"] for row in metrics["history"]]
    print(f"    ({arch} {source}: best epoch {metrics['best_epoch']}, {np.mean(seconds):.1f} s/epoch)", flush=True)
    return metrics["validation"]


def main() -> None:
    """Print one row per corpus and option."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA))
    parser.add_argument("--neural", nargs="*", default=[], help="ARCH:SOURCE, e.g. CNN:word2vec LSTM:fasttext")
    parser.add_argument("--no-tfidf", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=300, help="embedding width (paper: 1024)")
    parser.add_argument("--units", type=int, default=256, help="LSTM units / 4 x CNN filters (paper: 1024)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--tokenizer", default="whitespace")
    parser.add_argument("--no-buckets", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not (args.data / "uit_vsmec" / "train.tsv").exists():
        raise SystemExit(f"{args.data}: the shared text corpora are not there")
    rows = []
    for corpus in args.corpora:
        data = load_corpus(corpus, args.data)
        print(f"{corpus}: {len(data['train'][0])} train, {len(data['dev'][0])} dev texts", flush=True)
        options = [] if args.no_tfidf else [(name, "tfidf", cfg) for name, cfg in TFIDF_OPTIONS.items()]
        options += [(f"{spec} (dim {args.dim})", "neural", spec) for spec in args.neural]
        for name, kind, cfg in options:
            start = time.perf_counter()
            if kind == "tfidf":
                scores = run_tfidf(data, cfg)
            else:
                arch, source = cfg.split(":")
                scores = run_neural(data, arch, source, args)
            seconds = time.perf_counter() - start
            rows.append((corpus, name, scores, seconds))
            print(
                f"  {name:<52} WA {scores['WA']:.3f} UA {scores['UA']:.3f} WF1 {scores['WF1']:.3f} {seconds:7.1f} s",
                flush=True,
            )
    print("\n| corpus | option | dev WA | dev UA | dev WF1 | seconds |\n|---|---|---|---|---|---|")
    for corpus, name, s, seconds in rows:
        print(f"| {corpus} | {name} | {s['WA']:.3f} | {s['UA']:.3f} | {s['WF1']:.3f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
