"""The one training loop of the project's neural models: epochs, early stopping, resume, seeding.

Used by the TEFE encoders (:mod:`workflow_scripts.tefe.train`), the transformer text backend
(:mod:`workflow_scripts.tefe.transformer`) and the fusion heads
(:mod:`workflow_scripts.fusion.heads.trainer`). A caller seeds the run (:func:`start_run`),
builds its model and optimiser and hands :func:`train_with_early_stopping` three things:
``batch_losses`` (one epoch: per training batch its loss and row count, computed when drawn),
``evaluate`` (the selection split's loss and scores, in eval mode) and the generator that
orders its batches. The loop trains on the training split only, scores the selection split
after every epoch and stops on it alone (no test split ever reaches it), keeps the best epoch's
weights (by ``monitor``; ties go to the lower loss) and stops after ``patience`` epochs without
improvement or at ``epochs``.

Resumable: given a :class:`Resume` (a work dir and the run's fingerprint), the whole training
state (weights, optimiser, schedule, random generators, the best epoch so far, history) is
written there after every epoch, and a restarted run with the same fingerprint continues after
the last finished epoch, to the same result as an uninterrupted run; a work dir of another
fingerprint is discarded. The caller removes the work dir once its outputs are written
(:func:`remove_work_dir`).

Seeded (initialisation, dropout, batch order): on the CPU, the same settings and thread count
give bit-identical weights; on CUDA deterministic kernels are requested (cuDNN's LSTM may still
differ in the last bits).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight

from workflow_scripts.common.files import atomic_path
from workflow_scripts.common.metrics import METRICS, confusion_matrices, metrics_from_confusion
from workflow_scripts.common.seeding import seed_everything

log = logging.getLogger(__name__)

STATE_FILE = "last_epoch.pt"
# Part of every fingerprint: a state written by an older layout of the saved state is never resumed.
STATE_FORMAT = 2
# What orders the training batches: a NumPy generator (the fusion heads) or a torch one (TEFE).
OrderGenerator = np.random.Generator | torch.Generator


@dataclass(frozen=True)
class Resume:
    """Where a run keeps its per-epoch state, and what the run depends on (:func:`run_fingerprint`)."""

    work_dir: str | os.PathLike
    fingerprint: str


@dataclass(frozen=True)
class Stopping:
    """How long a run trains and which epoch it keeps (the keys of the training blocks)."""

    epochs: int
    patience: int
    monitor: str
    min_delta: float
    grad_clip: float

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> Stopping:
        """The stopping rule of a training block (its epochs, patience, monitor, min_delta and grad_clip)."""
        return cls(
            epochs=int(settings["epochs"]),
            patience=int(settings["patience"]),
            monitor=settings["monitor"],
            min_delta=float(settings["min_delta"]),
            grad_clip=float(settings["grad_clip"] or 0.0),
        )


def start_run(seed: int, device: torch.device) -> None:
    """Seed every generator and, on CUDA, ask torch for deterministic kernels (call before building the model)."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    seed_everything(seed)


def split_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """WA, UA and WF1 (:mod:`workflow_scripts.common.metrics`) of one data set, and its size ``n``."""
    values = metrics_from_confusion(confusion_matrices(y_true, y_pred, n_classes))
    return {**{name: float(values[name]) for name in METRICS}, "n": int(len(y_true))}


def class_weight_vector(y: np.ndarray, n_classes: int, spec: Any, classes: Sequence[str]) -> torch.Tensor | None:
    """Loss weights per class: none, ``balanced`` (n / (classes * count)) or a mapping class -> weight."""
    if spec in (None, "none"):
        return None
    if spec == "balanced":
        present = np.unique(y)
        if len(present) < n_classes:
            raise ValueError(
                f"class_weights balanced: the training split lacks classes "
                f"{[classes[i] for i in range(n_classes) if i not in present]}"
            )
        return torch.tensor(compute_class_weight("balanced", classes=np.arange(n_classes), y=y), dtype=torch.float32)
    if isinstance(spec, Mapping):
        missing = [c for c in classes if c not in spec]
        if missing or set(spec) - set(classes):
            raise ValueError(f"class_weights: expected a weight for each of {list(classes)}, got {dict(spec)}")
        return torch.tensor([float(spec[c]) for c in classes], dtype=torch.float32)
    raise ValueError(f"class_weights: {spec!r}, expected none, balanced or a mapping class -> weight")


def improved(current: Mapping[str, float], best: Mapping[str, float] | None, monitor: str, min_delta: float) -> bool:
    """Whether the selection scores beat the best so far (higher metric, lower loss for ``loss``; ties: lower loss)."""
    if best is None:
        return True
    if monitor == "loss":
        return current["loss"] < best["loss"] - min_delta
    if current[monitor] > best[monitor] + min_delta:
        return True
    return abs(current[monitor] - best[monitor]) <= 1e-12 and current["loss"] < best["loss"]


# --- resume state ---


def run_fingerprint(block: Mapping[str, Any], classes: Sequence[str], files: Sequence[str]) -> str:
    """What a training run depends on (settings, classes, each input's size and mtime): a resumed
    run must be the same run."""
    payload = {"block": block, "classes": list(classes), "state_format": STATE_FORMAT}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode())
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
    """Write the state after one epoch (atomically: a kill mid-write keeps the previous epoch's)."""
    with atomic_path(Path(work_dir) / STATE_FILE) as tmp:
        torch.save(dict(state), tmp)


def remove_work_dir(work_dir: str | os.PathLike | None) -> None:
    """Remove a finished run's work dir (its per-epoch state)."""
    if work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)


def rng_states(order: OrderGenerator) -> dict[str, Any]:
    """Every random generator a run draws from: the batch order's, torch's, Python's and NumPy's global ones."""
    states = {
        "order": order.bit_generator.state if isinstance(order, np.random.Generator) else order.get_state(),
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy_global": np.random.get_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(order: OrderGenerator, states: Mapping[str, Any]) -> None:
    """Put every generator back to :func:`rng_states`' record."""
    if isinstance(order, np.random.Generator):
        order.bit_generator.state = states["order"]
    else:
        order.set_state(states["order"])
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    np.random.set_state(states["numpy_global"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# --- the loop ---


@dataclass
class Progress:
    """Where a run stands after an epoch: the best selection scores so far and the history."""

    best: dict[str, float] | None = None
    best_state: dict[str, Any] | None = None
    best_epoch: int = 0
    waited: int = 0
    epoch: int = 0
    stopped: bool = False
    resumed_after_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self, epochs: int) -> dict[str, Any]:
        """Which epoch the run kept and when it stopped (of at most ``epochs``), for the metrics documents."""
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": len(self.history),
            "stopped_early": len(self.history) < epochs,
        }


def _resume(
    resume: Resume | None,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    order: OrderGenerator,
    name: str,
) -> Progress:
    """A fresh :class:`Progress`, or the one saved in ``resume``'s work dir with the model, optimiser,
    schedule and generators put back to the end of that epoch."""
    state = load_training_state(resume.work_dir, resume.fingerprint) if resume else None
    if state is None:
        return Progress()
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    restore_rng_states(order, state["rng"])
    log.info(f"{name}: resuming after epoch {state['epoch']} from {resume.work_dir}")
    fields = ("best", "best_state", "best_epoch", "waited", "epoch", "stopped")
    return Progress(**{key: state[key] for key in fields}, resumed_after_epoch=state["epoch"], history=state["history"])


def _save(
    resume: Resume,
    progress: Progress,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    order: OrderGenerator,
) -> None:
    state = {
        "fingerprint": resume.fingerprint,
        "epoch": progress.epoch,
        "stopped": progress.stopped,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng": rng_states(order),
        "best": progress.best,
        "best_state": progress.best_state,
        "best_epoch": progress.best_epoch,
        "waited": progress.waited,
        "history": progress.history,
    }
    save_training_state(resume.work_dir, state)


def _train_one_epoch(
    batch_losses: Iterable[tuple[torch.Tensor, int]],
    optimizer: torch.optim.Optimizer,
    clip: Sequence[torch.nn.Parameter],
    grad_clip: float,
    scheduler: Any,
) -> float:
    """One pass over the training batches; the mean training loss per row."""
    total, seen = 0.0, 0
    for loss, rows in batch_losses:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(clip, grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.item() * rows
        seen += rows
    return total / seen


def train_with_early_stopping(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    stopping: Stopping,
    batch_losses: Callable[[], Iterable[tuple[torch.Tensor, int]]],
    evaluate: Callable[[], dict[str, float]],
    order: OrderGenerator,
    name: str,
    prefix: str,
    clip: Sequence[torch.nn.Parameter] | None = None,
    scheduler: Any = None,
    resume: Resume | None = None,
) -> Progress:
    """Train ``model`` epoch by epoch until ``stopping`` says so; ``model`` ends with the best epoch's weights.

    ``batch_losses()`` gives one epoch's training batches (in the order ``order`` draws) as
    (mean loss, rows), each computed when drawn; ``evaluate()`` the selection split's ``loss``
    and scores. ``clip``: the parameters whose gradient norm ``stopping.grad_clip`` bounds (all
    of the model's by default). History rows name the selection scores ``<prefix>_<score>``.
    """
    clip = list(model.parameters()) if clip is None else list(clip)
    progress = _resume(resume, model, optimizer, scheduler, order, name)
    for epoch in range(progress.epoch + 1, 0 if progress.stopped else stopping.epochs + 1):
        started = time.perf_counter()
        model.train()
        train_loss = _train_one_epoch(batch_losses(), optimizer, clip, stopping.grad_clip, scheduler)
        scores = evaluate()
        seconds = round(time.perf_counter() - started, 3)
        shown = {f"{prefix}_{key}": value for key, value in scores.items() if key != "n"}
        progress.history.append({"epoch": epoch, "train_loss": train_loss, **shown, "seconds": seconds})
        better = improved(scores, progress.best, stopping.monitor, stopping.min_delta)
        line = " ".join(f"{key} {scores[key]:.4f}" for key in ("loss", *METRICS))
        log.info(f"{name} epoch {epoch}: train loss {train_loss:.4f}, {prefix} {line} ({seconds:.1f}s)" + " *" * better)
        progress.waited = 0 if better else progress.waited + 1
        if better:
            progress.best, progress.best_epoch = scores, epoch
            progress.best_state = copy.deepcopy(model.state_dict())
        progress.epoch = epoch
        progress.stopped = not better and progress.waited >= stopping.patience
        if resume:
            _save(resume, progress, model, optimizer, scheduler, order)
        if progress.stopped:
            log.info(f"{name}: no improvement of {prefix} {stopping.monitor} for {progress.waited} epochs, stopping")
            break
    model.load_state_dict(progress.best_state)
    return progress
