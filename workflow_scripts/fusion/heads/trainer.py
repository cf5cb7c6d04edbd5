"""The trainer of the neural fusion heads, over the shared loop (:mod:`workflow_scripts.common.training`).

Seeded (model initialisation, dropout and batch order), deterministic on the CPU for a fixed
thread count; on CUDA it asks torch for deterministic kernels. Trains on the training split,
scores the selection split after every epoch and stops early on it alone (no test split is
ever given to :func:`fit`), keeps the best epoch's weights, optionally weights the loss by
class (``none``, ``balanced`` or a mapping class -> weight), clips gradients and logs one line
per epoch. Models take a batch dictionary of tensors and return class logits; a model may
offer ``parameter_groups(learning_rate)`` for layer-wise learning rates (AdamW).

Resumable: given a ``work_dir``, :func:`fit` writes the whole training state there after every
epoch, and a restarted fit with the same ``fingerprint`` (:func:`run_fingerprint`) continues
after the last finished epoch, to the same result as an uninterrupted run; a work dir of another
fingerprint is discarded. The caller removes the work dir once its outputs are written
(:func:`remove_work_dir`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from workflow_scripts.common.devices import resolve_device
from workflow_scripts.common.metrics import METRICS, confusion_matrices, metrics_from_confusion
from workflow_scripts.common.training import (
    STATE_FILE,
    Resume,
    Stopping,
    class_weight_vector,
    remove_work_dir,
    run_fingerprint,
    start_run,
    train_with_early_stopping,
)

# The heads' view of training; the resume helpers are the shared loop's.
__all__ = [
    "STATE_FILE",
    "BatchSource",
    "cosine_schedule",
    "fit",
    "predict_probabilities",
    "remove_work_dir",
    "run_fingerprint",
    "score",
    "trainer_settings",
]

log = logging.getLogger(__name__)

# The trainer's keys of a head's block (fusion.heads.<head> in schemas/fusion.schema.yaml, which
# holds their defaults), in the order the metrics document lists them.
TRAINER_KEYS = (
    "epochs",
    "patience",
    "monitor",
    "min_delta",
    "batch_size",
    "learning_rate",
    "weight_decay",
    "grad_clip",
    "class_weights",
    "seed",
    "device",
    "lr_schedule",
)

Batch = dict[str, torch.Tensor]


class BatchSource(Protocol):
    """A split's labels and its batches (rows in the given order) as tensors."""

    labels: np.ndarray

    def batches(self, rows: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, Batch]]: ...


def trainer_settings(block: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer's keys of a head's validated block."""
    return {key: block[key] for key in TRAINER_KEYS}


def cosine_schedule(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step cosine decay of every group's learning rate to 0 after ``steps`` steps (stepped per batch)."""
    total = max(1, int(steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    )


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {key: value.to(device) for key, value in batch.items()}


@torch.no_grad()
def predict_probabilities(
    model: torch.nn.Module, source: BatchSource, batch_size: int, device: torch.device
) -> np.ndarray:
    """Class probabilities of every row of ``source``, in its order."""
    model.eval()
    parts = []
    for _, batch in source.batches(np.arange(len(source.labels)), batch_size):
        parts.append(torch.softmax(model(to_device(batch, device)).float(), dim=1).cpu().numpy())
    return np.concatenate(parts).astype(np.float64)


def score(probabilities: np.ndarray, y: np.ndarray, weights: torch.Tensor | None) -> dict[str, float]:
    """Loss (weighted as in training) and WA / UA / WF1 of probabilities against labels."""
    logp = torch.log(torch.from_numpy(probabilities).clamp(min=1e-12))
    loss = torch.nn.functional.nll_loss(logp.float(), torch.from_numpy(y), weight=weights)
    values = metrics_from_confusion(confusion_matrices(y, probabilities.argmax(axis=1), probabilities.shape[1]))
    return {"loss": float(loss), **{name: float(values[name]) for name in METRICS}}


def fit(
    build_model: Callable[[], torch.nn.Module],
    train: BatchSource,
    selection: BatchSource,
    classes: Sequence[str],
    block: Mapping[str, Any],
    name: str = "head",
    work_dir: str | os.PathLike | None = None,
    fingerprint: str = "",
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train ``build_model()`` on ``train``, stopping early on ``selection``; the best model (CPU) and a report.

    With ``work_dir``, the training state is saved there after every epoch and a state of the
    same ``fingerprint`` (what the run depends on) is resumed from.
    """
    cfg = trainer_settings(block)
    device = resolve_device(cfg["device"])
    seed = int(cfg["seed"])
    start_run(seed, device)
    model = build_model().to(device)
    y_train = np.asarray(train.labels, dtype=np.int64)
    y_selection = np.asarray(selection.labels, dtype=np.int64)
    if len(y_train) < 2 or len(y_selection) < 1:
        raise ValueError(f"{name}: needs at least 2 training and 1 selection utterance")
    weights = class_weight_vector(y_train, len(classes), cfg["class_weights"], classes)
    loss_weights = weights.to(device) if weights is not None else None
    lr = float(cfg["learning_rate"])
    groups = model.parameter_groups(lr) if hasattr(model, "parameter_groups") else model.parameters()
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=float(cfg["weight_decay"]))
    rng = np.random.default_rng(seed)
    batch_size = int(cfg["batch_size"])
    scheduler = None
    if cfg["lr_schedule"] == "cosine":
        scheduler = cosine_schedule(optimizer, int(cfg["epochs"]) * math.ceil(len(y_train) / batch_size))

    def batch_losses() -> Iterator[tuple[torch.Tensor, int]]:
        for rows, batch in train.batches(rng.permutation(len(y_train)), batch_size):
            batch = to_device(batch, device)
            yield torch.nn.functional.cross_entropy(model(batch), batch["y"], weight=loss_weights), len(rows)

    def evaluate() -> dict[str, float]:
        return score(predict_probabilities(model, selection, batch_size, device), y_selection, weights)

    started = time.perf_counter()
    resume = Resume(work_dir, fingerprint) if work_dir else None
    progress = train_with_early_stopping(
        model,
        optimizer,
        Stopping.of(cfg),
        batch_losses,
        evaluate,
        rng,
        name,
        "selection",
        scheduler=scheduler,
        resume=resume,
    )
    report = {
        "training": cfg,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "train_size": int(len(y_train)),
        "selection_size": int(len(y_selection)),
        "class_weights": None if weights is None else [float(w) for w in weights],
        "parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "selection": progress.best,
        "history": progress.history,
        **progress.summary(int(cfg["epochs"])),
        "resumed_after_epoch": progress.resumed_after_epoch,
        "train_seconds": round(time.perf_counter() - started, 3),
    }
    return model.cpu().eval(), report
