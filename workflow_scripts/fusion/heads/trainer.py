"""The trainer shared by the neural fusion heads.

Seeded (model initialisation, dropout and batch order), deterministic on the CPU for a fixed
thread count; on CUDA it asks torch for deterministic kernels. Trains on the training split,
scores the selection split after every epoch and stops early on it alone (no test split is
ever given to :func:`fit`), keeps the best epoch's weights, optionally weights the loss by
class (``none``, ``balanced`` or a mapping class -> weight), clips gradients and logs one line
per epoch. Models take a batch dictionary of tensors and return class logits; a model may
offer ``parameter_groups(learning_rate)`` for layer-wise learning rates (AdamW).

Resumable: given a ``work_dir``, :func:`fit` writes the whole training state (weights, optimiser,
random generators, the best epoch so far, history) there after every epoch, and a restarted fit
with the same ``fingerprint`` continues after the last finished epoch, to the same result as an
uninterrupted run; a work dir of another fingerprint is discarded. The caller removes the work
dir once its outputs are written (:func:`remove_work_dir`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from workflow_scripts.common.devices import resolve_device
from workflow_scripts.common.files import atomic_path
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


STATE_FILE = "last_epoch.pt"


def run_fingerprint(block: Mapping[str, Any], classes: Sequence[str], files: Sequence[str]) -> str:
    """What a training run depends on (settings, classes, each input's size and mtime): a resumed
    run must be the same run."""
    digest = hashlib.sha256(json.dumps({"block": block, "classes": list(classes)}, sort_keys=True).encode())
    for path in files:
        stat = os.stat(path)
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def load_training_state(work_dir: str | os.PathLike, fingerprint: str) -> dict[str, Any] | None:
    """The state saved after the last finished epoch in ``work_dir`` when it has ``fingerprint``;
    otherwise (none, unreadable, another run's) None, and the work dir is emptied."""
    work = Path(work_dir)
    path = work / STATE_FILE
    if path.exists():
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # torch raises several types for a truncated file
            log.info("%s: unreadable (%s), starting afresh", path, error)
            state = None
        if isinstance(state, dict) and state.get("fingerprint") == fingerprint:
            return state
        log.info("%s holds the state of another configuration or data: starting afresh", work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return None


def save_training_state(work_dir: str | os.PathLike, state: Mapping[str, Any]) -> None:
    with atomic_path(Path(work_dir) / STATE_FILE) as tmp:
        torch.save(dict(state), tmp)


def remove_work_dir(work_dir: str | os.PathLike | None) -> None:
    """Remove a finished run's work dir (its per-epoch state)."""
    if work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)


def _rng_states(rng: np.random.Generator) -> dict[str, Any]:
    states = {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state(), "python": random.getstate()}
    states["numpy_global"] = np.random.get_state()
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(rng: np.random.Generator, states: Mapping[str, Any]) -> None:
    rng.bit_generator.state = states["numpy"]
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    np.random.set_state(states["numpy_global"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _prefixed(scores: Mapping[str, float]) -> dict[str, float]:
    return {f"selection_{key}": value for key, value in scores.items()}


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
    first_epoch, resumed = 1, None
    state = load_training_state(work_dir, fingerprint) if work_dir else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _restore_rng_states(rng, state["rng"])
        best, best_state, best_epoch, waited = state["best"], state["best_state"], state["best_epoch"], state["waited"]
        history, resumed = list(state["history"]), int(state["epoch"])
        first_epoch = resumed + 1
        log.info(f"{name}: resuming after epoch {resumed} from {work_dir}")
    started = time.perf_counter()
    stopped = state is not None and state["stopped"]
    for epoch in range(first_epoch, 0 if stopped else int(cfg["epochs"]) + 1):
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
        stop = not better and waited >= int(cfg["patience"])
        if work_dir:
            save_training_state(
                work_dir,
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "stopped": stop,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng": _rng_states(rng),
                    "best": best,
                    "best_state": best_state,
                    "best_epoch": best_epoch,
                    "waited": waited,
                    "history": history,
                },
            )
        if stop:
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
    report["resumed_after_epoch"] = resumed
    report["train_seconds"] = round(time.perf_counter() - started, 3)
    return model.cpu().eval(), report
