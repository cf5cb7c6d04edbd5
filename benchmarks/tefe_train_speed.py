"""Speed of TEFE training and feature extraction on the demo text corpus, per architecture.

Trains each architecture for a given number of epochs with the workflow's own code and the
paper's widths (embedding 1024; config.yaml's tefe block), then encodes a batch of texts as
extract_tefe does, and prints wall-clock and CPU seconds. Needs the data stage's outputs
(results/data/text/*.tsv): run `snakemake --cores 2 results/data/text/summary.json` first.

    python -m benchmarks.tefe_train_speed --threads 1 --epochs 1
    python -m benchmarks.tefe_train_speed --threads 2 --epochs 1 --archs LSTM
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import torch
import yaml

from workflow_scripts.common.names import TEFE_ARCHITECTURES
from workflow_scripts.tefe.embedding import build_embedding
from workflow_scripts.tefe.extract import text_features
from workflow_scripts.tefe.train import read_labelled_texts, train_encoder


def main() -> None:
    """Print one line of timings per architecture."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--data", default="results/data/text")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--archs", nargs="+", default=list(TEFE_ARCHITECTURES))
    parser.add_argument(
        "--extract-texts", type=int, default=640, help="texts to encode (the demo speech corpus has 640)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with open(args.config, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    tefe, classes = config["tefe"], config["task"]["classes"]
    data = {s: read_labelled_texts(os.path.join(args.data, f"{s}.tsv"), classes) for s in ("train", "dev")}
    start = time.perf_counter()
    vocab, matrix, _ = build_embedding(data["train"][0], tefe["text"], tefe["embedding"])
    print(f"embedding {matrix.shape}: {time.perf_counter() - start:.1f}s wall")
    print(f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}, torch threads {args.threads}")
    texts = (data["train"][0] * 2)[: args.extract_texts]
    for arch in args.archs:
        training = {**tefe["training"], "epochs": args.epochs, "patience": args.epochs, "device": "cpu"}
        wall, cpu = time.perf_counter(), time.process_time()
        model, metrics = train_encoder(
            arch, vocab, matrix, data["train"], data["dev"], classes, tefe["models"][arch], training
        )
        train_wall, train_cpu = time.perf_counter() - wall, time.process_time() - cpu
        wall = time.perf_counter()
        for _ in text_features(model, vocab, texts, tefe["extract"]["batch_size"], torch.device("cpu")):
            pass
        extract_wall = time.perf_counter() - wall
        print(
            f"{arch:<11} train {args.epochs} epoch(s) of {len(data['train'][0])}: {train_wall:6.1f}s wall "
            f"{train_cpu:6.1f}s cpu ({train_wall / args.epochs:.1f}s/epoch) | encode {len(texts)} texts "
            f"{extract_wall:5.1f}s | dev WA {metrics['validation']['WA']:.3f} | "
            f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
            flush=True,
        )


if __name__ == "__main__":
    main()
