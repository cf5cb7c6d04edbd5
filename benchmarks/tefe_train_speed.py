"""Speed of TEFE training and feature extraction on the demo text corpus, per architecture.

Trains each architecture for a given number of epochs with the workflow's own code and the
paper's widths (embedding 1024; config.yaml's tefe block), then encodes a batch of texts as
extract_tefe does, and prints wall-clock and CPU seconds. Needs the data stage's outputs
(results/data/text/*.tsv): run `snakemake --cores 2 results/data/text/summary.json` first.

    python -m benchmarks.tefe_train_speed --threads 1 --epochs 1
    python -m benchmarks.tefe_train_speed --threads 2 --epochs 1 --archs LSTM

Old against new batching on real text (UIT-VSMEC or VLSP 2016 from ../shared/data/text, see
benchmarks/tefe_real_text.py): each mode is ``batching:threads``, ``random`` being the paper's
shuffled batches (each cut to its longest text), ``bucket`` the length-bucketed ones
(tefe.training.length_buckets), ``pad`` the shuffled batches padded to ``max_length`` (the
behaviour before batches were cut: every batch computed ``max_length`` positions):

    OMP_NUM_THREADS=1 python -m benchmarks.tefe_train_speed --corpus uit_vsmec --max-length 48 \
        --archs CNN LSTM --modes pad:1 random:1 bucket:1 bucket:2 --epochs 2

``--dim`` / ``--units`` shrink the embedding and the layers (default: config.yaml's, the paper's).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import time
from unittest import mock

import numpy as np
import torch
import yaml

from workflow_scripts.common.names import TEFE_ARCHITECTURES
from workflow_scripts.config import validate_config
from workflow_scripts.tefe.embedding import build_embedding
from workflow_scripts.tefe.extract import text_features
from workflow_scripts.tefe.models import batch_indices, bucketed_batch_indices
from workflow_scripts.tefe.train import read_labelled_texts, train_encoder


def main() -> None:
    """Print one line of timings per architecture."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--data", default="results/data/text")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--archs", nargs="+", default=list(TEFE_ARCHITECTURES))
    parser.add_argument("--corpus", default="demo", help="demo (results/data/text), uit_vsmec or vlsp2016")
    parser.add_argument("--max-length", type=int, default=None, help="tefe.text.max_length (default: config's)")
    parser.add_argument("--modes", nargs="+", default=None, help="batching:threads, e.g. random:1 bucket:2")
    parser.add_argument(
        "--extract-texts", type=int, default=640, help="texts to encode (the demo speech corpus has 640)"
    )
    parser.add_argument("--dim", type=int, default=None, help="embedding width (default: config's)")
    parser.add_argument("--units", type=int, default=None, help="LSTM units / 4 x CNN filters (default: config's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with open(args.config, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    validate_config(config, "schemas/config.schema.yaml")  # fills the defaults the training reads
    tefe, classes = config["tefe"], config["task"]["classes"]
    if args.dim:
        tefe["embedding"]["dim"] = args.dim
    if args.units:
        units = args.units
        tefe["models"]["CNN"]["filters"] = units // 4
        tefe["models"]["LSTM"]["units"] = units
        tefe["models"]["BiLSTM"]["units"] = units // 2
        tefe["models"]["BiLSTM_CNN"].update(units=units // 2, filters=units // 4)
    if args.corpus == "demo":
        data = {s: read_labelled_texts(os.path.join(args.data, f"{s}.tsv"), classes) for s in ("train", "dev")}
    else:
        from benchmarks.tefe_real_text import load_corpus

        data = load_corpus(args.corpus)
    text = {**tefe["text"], **({"max_length": args.max_length} if args.max_length else {})}
    start = time.perf_counter()
    vocab, matrix, _ = build_embedding(data["train"][0], text, tefe["embedding"])
    print(f"embedding {matrix.shape}: {time.perf_counter() - start:.1f}s wall")
    print(f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}, torch threads {args.threads}")
    texts = (data["train"][0] * 2)[: args.extract_texts]
    if args.modes:
        compare_modes(args, tefe, classes, vocab, matrix, data)
        return
    for arch in args.archs:
        training = {**tefe["training"], "epochs": args.epochs, "patience": args.epochs, "device": "cpu"}
        wall, cpu = time.perf_counter(), time.process_time()
        model, metrics = train_encoder(
            arch, vocab, matrix, data["train"], data["dev"], classes, tefe["models"][arch], training, tefe["embedding"]
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


def positions_per_epoch(lengths: np.ndarray, batch_size: int, max_length: int, seed: int = 42) -> dict[str, int]:
    """Token positions one training epoch computes in each batching (what bounds the speed-up of buckets)."""
    shuffled = batch_indices(len(lengths), batch_size, torch.Generator().manual_seed(seed))
    bucketed = bucketed_batch_indices(lengths, batch_size, torch.Generator().manual_seed(seed))
    return {
        "texts": int(lengths.sum()),
        "pad": len(lengths) * max_length,
        "random": sum(int(lengths[rows.numpy()].max()) * len(rows) for rows in shuffled),
        "bucket": sum(int(lengths[rows.numpy()].max()) * len(rows) for rows in bucketed),
    }


def compare_modes(args, tefe, classes, vocab, matrix, data) -> None:
    """Per-epoch seconds and dev scores of each batching:threads mode, per architecture."""
    _, lengths = vocab.encode(list(data["train"][0]))
    count = positions_per_epoch(lengths, int(tefe["training"]["batch_size"]), vocab.settings["max_length"])
    print(
        f"token positions per epoch: texts {count['texts']}, pad {count['pad']} (x{count['pad'] / count['bucket']:.2f} "
        f"of bucket), random {count['random']} (x{count['random'] / count['bucket']:.2f}), bucket {count['bucket']}",
        flush=True,
    )
    for arch in args.archs:
        base = base_cpu = None
        for mode in args.modes:
            batching, threads = mode.split(":")
            torch.set_num_threads(int(threads))
            training = {
                **tefe["training"],
                "epochs": args.epochs,
                "patience": args.epochs,
                "device": "cpu",
                "length_buckets": batching == "bucket",
            }
            # pad: every batch keeps all max_length positions (no cut to the batch's longest text).
            untrimmed = mock.patch(
                "workflow_scripts.tefe.train.trim_batch", lambda ids, lengths, rows: (ids[rows], lengths[rows])
            )
            cpu = time.process_time()
            with untrimmed if batching == "pad" else contextlib.nullcontext():
                _, metrics = train_encoder(
                    arch,
                    vocab,
                    matrix,
                    data["train"],
                    data["dev"],
                    classes,
                    tefe["models"][arch],
                    training,
                    tefe["embedding"],
                )
            # CPU seconds per epoch (training + dev scoring): less sensitive to other load than wall time.
            cpu_epoch = (time.process_time() - cpu) / len(metrics["history"])
            per_epoch = sum(row["seconds"] for row in metrics["history"]) / len(metrics["history"])
            base = base or per_epoch
            base_cpu = base_cpu or cpu_epoch
            best = metrics["validation"]
            print(
                f"{arch:<11} {mode:<9} {per_epoch:7.1f} s/epoch wall (x{base / per_epoch:.2f}), {cpu_epoch:7.1f} "
                f"CPU s/epoch (x{base_cpu / cpu_epoch:.2f}) | best epoch "
                f"{metrics['best_epoch']} dev WA {best['WA']:.3f} UA {best['UA']:.3f} WF1 {best['WF1']:.3f} | "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
