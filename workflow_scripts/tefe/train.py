"""Training of one TEFE architecture (rule train_tefe): early stopping on the text corpus's dev split.

Reads the shared vocabulary and frozen embedding (rule build_tefe_embedding) and trains the
architecture's body and output layer with Adam on the training split in the shared loop
(:mod:`workflow_scripts.common.training`): the dev split is scored after every epoch, the best
epoch's weights are kept (by ``monitor``; ties go to the lower dev loss) and training stops
after ``patience`` epochs without improvement or at ``epochs``. The text corpus's test split is
never read here. Writes ``model.pt`` (architecture, settings, classes, weights with the frozen
embedding), ``vocab.json`` (the vocabulary with its text settings) and ``metrics.json``
(validation scores, history, parameter counts, timings). Given a work dir (the rule's
``work_dir`` param), a killed job resumes after its last finished epoch.

Seeded throughout (initialisation, shuffling, dropout): on the CPU, the same config and
thread count give bit-identical weights. On CUDA, deterministic algorithms are requested but
cuDNN's LSTM may still differ in the last bits.
"""

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from workflow_scripts.common.checksums import record_checksum
from workflow_scripts.common.devices import resolve_device
from workflow_scripts.common.files import write_json
from workflow_scripts.common.labels import encode_labels
from workflow_scripts.common.manifest import TEXT_COLUMNS, read_manifest
from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.training import (
    Resume,
    Stopping,
    class_weight_vector,
    remove_work_dir,
    run_fingerprint,
    split_scores,
    start_run,
    train_with_early_stopping,
)
from workflow_scripts.tefe.models import (
    TextEncoder,
    batch_indices,
    bucketed_batch_indices,
    model_settings,
    paper_comparison,
    parameter_counts,
    predict_logits,
    save_checkpoint,
    trim_batch,
)
from workflow_scripts.tefe.text import Vocabulary

log = logging.getLogger(__name__)

# The keys of tefe.training (schemas/tefe.schema.yaml holds their defaults), in the order the
# metrics document lists them.
TRAINING_KEYS = (
    "epochs",
    "patience",
    "min_delta",
    "batch_size",
    "learning_rate",
    "weight_decay",
    "grad_clip",
    "class_weights",
    "monitor",
    "seed",
    "device",
    "eval_batch_size",
    "length_buckets",
    "threads",
)


def training_settings(shared: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The validated tefe.training block with an architecture's ``training`` overrides applied."""
    merged = {**shared, **overrides}
    return {key: merged[key] for key in TRAINING_KEYS}


def evaluate(
    model: TextEncoder,
    ids: np.ndarray,
    lengths: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    device: torch.device,
    weights: torch.Tensor | None = None,
) -> dict[str, float]:
    """Loss (weighted as in training) and WA / UA / WF1 on one split."""
    logits = torch.from_numpy(predict_logits(model, ids, lengths, batch_size, device))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y), weight=weights)
    scores = split_scores(y, logits.argmax(dim=1).numpy(), logits.shape[1])
    return {"loss": float(loss), **scores}


def train_encoder(
    arch: str,
    vocab: Vocabulary,
    embedding: np.ndarray,
    train: tuple[Sequence[str], np.ndarray],
    dev: tuple[Sequence[str], np.ndarray],
    classes: Sequence[str],
    model_config: Mapping[str, Any],
    training_config: Mapping[str, Any],
    embedding_config: Mapping[str, Any],
    resume: Resume | None = None,
) -> tuple[TextEncoder, dict[str, Any]]:
    """Train one architecture with early stopping on ``dev``; returns the best model (on the CPU) and metrics.

    ``model_config``: tefe.models.<arch> (its ``training``: overrides of ``training_config``,
    tefe.training). ``embedding_config`` (tefe.embedding): with ``trainable: true`` the embedding is trained too
    (beyond the paper, whose embedding stays frozen). ``resume``: where the per-epoch state is
    kept, so a killed run continues after its last finished epoch.
    """
    cfg = training_settings(training_config, model_config["training"])
    settings = model_settings(arch, model_config)
    device = resolve_device(cfg["device"])
    start_run(int(cfg["seed"]), device)
    n_classes = len(classes)
    trainable_embedding = bool(embedding_config["trainable"])
    model = TextEncoder(
        arch, torch.from_numpy(embedding), n_classes, settings, trainable_embedding=trainable_embedding
    ).to(device)
    train_ids, train_len = vocab.encode(list(train[0]))
    dev_ids, dev_len = vocab.encode(list(dev[0]))
    y_train = np.asarray(train[1], dtype=np.int64)
    y_dev = np.asarray(dev[1], dtype=np.int64)
    if len(y_train) < 2 or len(y_dev) < 1:
        raise ValueError(f"TEFE training needs at least 2 training and 1 dev text (got {len(y_train)}, {len(y_dev)})")
    weights = class_weight_vector(y_train, n_classes, cfg["class_weights"], classes)
    loss_weights = weights.to(device) if weights is not None else None
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=float(cfg["learning_rate"]), weight_decay=float(cfg["weight_decay"]))
    generator = torch.Generator().manual_seed(int(cfg["seed"]))
    ids_t, len_t, y_t = torch.from_numpy(train_ids), torch.from_numpy(train_len), torch.from_numpy(y_train)

    def batch_losses() -> Iterator[tuple[torch.Tensor, int]]:
        if cfg["length_buckets"]:
            batches = bucketed_batch_indices(train_len, int(cfg["batch_size"]), generator)
        else:
            batches = batch_indices(len(y_train), int(cfg["batch_size"]), generator)
        for rows in batches:
            x, n = trim_batch(ids_t, len_t, rows)
            logits = model(x.to(device), n.to(device))
            yield torch.nn.functional.cross_entropy(logits, y_t[rows].to(device), weight=loss_weights), len(rows)

    def evaluate_dev() -> dict[str, float]:
        return evaluate(model, dev_ids, dev_len, y_dev, int(cfg["eval_batch_size"]), device, weights)

    started = time.perf_counter()
    progress = train_with_early_stopping(
        model,
        optimizer,
        Stopping.of(cfg),
        batch_losses,
        evaluate_dev,
        generator,
        arch,
        "dev",
        clip=trainable,
        resume=resume,
    )
    model = model.cpu().eval()
    metrics = {
        "architecture": arch,
        "classes": list(classes),
        "model": settings,
        "training": cfg,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "vocabulary_size": len(vocab),
        "embedding_dim": int(embedding.shape[1]),
        "embedding_trainable": trainable_embedding,
        "feature_dim": model.feature_dim,
        "train_size": int(len(y_train)),
        "dev_size": int(len(y_dev)),
        "class_weights": None if weights is None else [float(w) for w in weights],
        "parameters": {
            **parameter_counts(model),
            **paper_comparison(arch, len(vocab), int(embedding.shape[1]), n_classes, settings),
        },
        **progress.summary(int(cfg["epochs"])),
        "validation": progress.best,
        "history": progress.history,
        "train_seconds": round(time.perf_counter() - started, 3),
    }
    return model, metrics


def read_labelled_texts(path: str, classes: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Texts and class indices of a text corpus manifest."""
    frame = read_manifest(path, columns=TEXT_COLUMNS)
    return frame["text"].tolist(), encode_labels(frame["label"].tolist(), classes, path, frame["utt_id"].tolist())


INPUTS = ("train", "dev", "vocab", "embedding")


def job_resume(job: Any, arch: str, classes: Sequence[str]) -> Resume:
    """Where a train_tefe job keeps its per-epoch state (the rule's ``work_dir`` param)."""
    settings = {"arch": arch, **{key: job.params[key] for key in ("model", "training", "embedding")}}
    return Resume(job.params.work_dir, run_fingerprint(settings, classes, [str(job.input[key]) for key in INPUTS]))


def main(job: Any) -> None:
    """Entry point of the train_tefe rule (one architecture; ``job``: the rule's ``snakemake`` object)."""
    arch, classes = job.wildcards.arch, list(job.params.classes)
    resume = job_resume(job, arch, classes)
    torch.set_num_threads(job.threads)
    vocab = Vocabulary.load(job.input.vocab)
    embedding = np.load(job.input.embedding)
    if embedding.shape[0] != len(vocab):
        raise ValueError(
            f"{job.input.embedding}: {embedding.shape[0]} rows, but {job.input.vocab} has {len(vocab)} tokens"
        )
    model, metrics = train_encoder(
        arch,
        vocab,
        embedding,
        read_labelled_texts(job.input.train, classes),
        read_labelled_texts(job.input.dev, classes),
        classes,
        job.params.model,
        job.params.training,
        job.params.embedding,
        resume,
    )
    metrics["inputs"] = {key: str(getattr(job.input, key)) for key in INPUTS}
    save_checkpoint(job.output.model, model, classes)
    vocab.save(job.output.vocab)
    record_checksum(job.output.vocab)
    write_json(job.output.metrics, metrics)
    remove_work_dir(resume.work_dir)  # the outputs are written: nothing left to resume
    log.info(
        "%s: best epoch %d of %d, dev %s, %s parameters, %.1fs",
        arch,
        metrics["best_epoch"],
        metrics["epochs_run"],
        metrics["validation"],
        metrics["parameters"],
        metrics["train_seconds"],
    )


if __name__ == "__main__":
    run_rule(main, keep=True)
