"""The trainer shared by the neural fusion heads.

Seeded (model initialisation, dropout and batch order), deterministic on the CPU for a fixed
thread count; on CUDA it asks torch for deterministic kernels. Trains on the training split,
scores the selection split after every epoch and stops early on it alone (no test split is
ever given to :func:`fit`), keeps the best epoch's weights, optionally weights the loss by
class (``none``, ``balanced`` or a mapping class -> weight), clips gradients and logs one line
per epoch. Models take a batch dictionary of tensors and return class logits; a model may
offer ``parameter_groups(learning_rate)`` for layer-wise learning rates (AdamW).
"""

from __future__ import annotations

import copy
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
from workflow_scripts.common.seeding import seed_everything
from workflow_scripts.tefe.train import class_weight_vector, improved

log = logging.getLogger(__name__)

TRAINER_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "patience": 3,
    "monitor": "UA",
    "min_delta": 0.0,
    "batch_size": 64,
    "learning_rate": 1.0e-4,
    "weight_decay": 0.01,
    "grad_clip": 1.0,
    "class_weights": "none",
    "seed": 42,
    "device": "auto",
    # constant, or cosine: the learning rate decays per step from learning_rate to 0 over epochs.
    "lr_schedule": "constant",
}

Batch = dict[str, torch.Tensor]


class BatchSource(Protocol):
    """A split's labels and its batches (rows in the given order) as tensors."""

    labels: np.ndarray

    def batches(self, rows: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, Batch]]: ...


def trainer_settings(block: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer's keys of a head's block, defaults filled in."""
    settings = {key: block.get(key, default) for key, default in TRAINER_DEFAULTS.items()}
    if settings["monitor"] not in ("loss", *METRICS):
        raise ValueError(f"fusion head monitor {settings['monitor']!r}, expected loss, WA, UA or WF1")
    if settings["lr_schedule"] not in ("constant", "cosine"):
        raise ValueError(f"fusion head lr_schedule {settings['lr_schedule']!r}, expected constant or cosine")
    return settings


def cosine_schedule(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step cosine decay of every group's learning rate to 0 after ``steps`` steps (stepped per batch)."""
    total = max(1, int(steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    )


def make_deterministic(device: torch.device) -> None:
    """Ask torch for deterministic kernels on CUDA (the CPU kernels are deterministic per thread count)."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


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


def _prefixed(scores: Mapping[str, float]) -> dict[str, float]:
    return {f"selection_{key}": value for key, value in scores.items()}


def fit(
    build_model: Callable[[], torch.nn.Module],
    train: BatchSource,
    selection: BatchSource,
    classes: Sequence[str],
    block: Mapping[str, Any],
    name: str = "head",
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train ``build_model()`` on ``train``, stopping early on ``selection``; the best model (CPU) and a report."""
    cfg = trainer_settings(block)
    device = resolve_device(cfg["device"])
    make_deterministic(device)
    seed = int(cfg["seed"])
    seed_everything(seed)
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
    best, best_state, best_epoch, waited, history = None, None, 0, 0, []
    started = time.perf_counter()
    for epoch in range(1, int(cfg["epochs"]) + 1):
        epoch_start = time.perf_counter()
        model.train()
        total, seen = 0.0, 0
        for rows, batch in train.batches(rng.permutation(len(y_train)), batch_size):
            batch = to_device(batch, device)
            logits = model(batch)
            loss = torch.nn.functional.cross_entropy(logits, batch["y"], weight=loss_weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg["grad_clip"]))
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += loss.item() * len(rows)
            seen += len(rows)
        scores = score(predict_probabilities(model, selection, batch_size, device), y_selection, weights)
        seconds = round(time.perf_counter() - epoch_start, 3)
        history.append({"epoch": epoch, "train_loss": total / seen, **_prefixed(scores), "seconds": seconds})
        better = improved(scores, best, cfg["monitor"], float(cfg["min_delta"]))
        shown = " ".join(f"{key} {scores[key]:.4f}" for key in ("loss", *METRICS))
        log.info(
            f"{name} epoch {epoch}: train loss {total / seen:.4f}, selection {shown} ({seconds:.1f}s)" + " *" * better
        )
        waited = 0 if better else waited + 1
        if better:
            best, best_epoch, best_state = scores, epoch, copy.deepcopy(model.state_dict())
        elif waited >= int(cfg["patience"]):
            log.info(f"{name}: no improvement of selection {cfg['monitor']} for {waited} epochs, stopping")
            break
    model.load_state_dict(best_state)
    report = {
        "training": cfg,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "train_size": int(len(y_train)),
        "selection_size": int(len(y_selection)),
        "class_weights": None if weights is None else [float(w) for w in weights],
        "parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "selection": best,
        "history": history,
    }
    # When it stopped and which epoch it kept (the selection split's best).
    report.update(best_epoch=best_epoch, epochs_run=len(history), stopped_early=len(history) < int(cfg["epochs"]))
    report["train_seconds"] = round(time.perf_counter() - started, 3)
    return model.cpu().eval(), report
