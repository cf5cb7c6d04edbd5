"""What every neural fusion head shares around its own model (``xattn``, ``graph``, the next one).

A head module keeps its model, its data (a batch source per split) and its ``train_and_evaluate``;
this module gives it, identically for every head:

* :class:`HeadRun` / :func:`head_run`: what ``train_and_evaluate`` takes from the rule beside its
  input files (block, classes, splits' roles, the variant and its title with the ablation's
  overrides, the resume work dir), and torch's thread count;
* :func:`split_labels`: a split's utt_ids and encoded labels from its manifest;
* :func:`predict_splits`: after training, every split predicted and scored (test splits are
  opened only then, through the head's ``load``);
* :func:`training_summary` and :func:`metrics_document`: the head variant's ``summary.json`` and
  its metrics document (the evaluate_variant shape, so Table 2, the confusion matrices and
  Figure 2 read it like any variant);
* :func:`save_checkpoint` / :func:`read_head_checkpoint`: the checkpoint payload (format,
  settings, widths, classes, weights, plus what a head adds) and its checked reading;
* :func:`write_outputs`: the rule's outputs (model, summary, probabilities, metrics), then the
  resume state removed.
"""

import logging
import os
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from workflow_scripts.common.checksums import write_checked
from workflow_scripts.common.files import write_json
from workflow_scripts.common.labels import encode_labels
from workflow_scripts.common.metrics import METRICS, headline_metrics, split_metrics
from workflow_scripts.common.metrics import metrics_document as build_metrics_document
from workflow_scripts.fusion.heads.trainer import predict_probabilities, remove_work_dir
from workflow_scripts.fusion.pooling import read_labels, write_probabilities
from workflow_scripts.tefe.models import read_checkpoint

log = logging.getLogger(__name__)

# Keys of a head checkpoint besides its weights (``state_dict``) and format.
CHECKPOINT_HEADER = ("settings", "dims", "classes")


class SplitData(Protocol):
    """A head's data of one split: what the trainer batches, in manifest order."""

    utt_ids: list[str]
    labels: np.ndarray


@dataclass(frozen=True)
class HeadRun:
    """One head variant's training run beside its input files: the variant's ``block``, the
    ``bootstrap`` settings, the ``classes``, the splits' roles, the ``variant`` and its ``title``,
    and the ``work_dir`` of its per-epoch state (resume; None: not resumable)."""

    block: Mapping[str, Any]
    bootstrap: Mapping[str, Any]
    classes: Sequence[str]
    train_split: str
    selection_split: str
    variant: str
    title: str
    work_dir: str | None = None


def head_run(job: Any, title: str) -> HeadRun:
    """The run a head's rule job describes (the title gets ``, key=value, ...`` for an ablation's
    overrides). Sets torch's threads to the job's."""
    overrides = ", ".join(f"{key}={value}" for key, value in job.params.overrides.items())
    torch.set_num_threads(max(1, job.threads))
    return HeadRun(
        block=job.params.head,
        bootstrap=job.params.bootstrap,
        classes=list(job.params.classes),
        train_split=job.params.train_split,
        selection_split=job.params.selection_split,
        variant=job.wildcards.variant,
        title=f"{title}, {overrides}" if overrides else title,
        work_dir=job.params.work_dir,
    )


def split_labels(manifest: str, classes: Sequence[str], split: str) -> tuple[list[str], np.ndarray]:
    """A split's utt_ids and class indices, from its manifest."""
    utt_ids, labels = read_labels(manifest, classes)
    return utt_ids, encode_labels(labels, classes, f"labels of {split}", utt_ids)


def predict_splits(
    model: torch.nn.Module,
    report: Mapping[str, Any],
    splits: Sequence[str],
    loaded: Mapping[str, SplitData],
    load: Callable[[str], SplitData],
    classes: Sequence[str],
    bootstrap: Mapping[str, Any],
) -> tuple[dict[str, tuple[list[str], np.ndarray]], dict[str, dict[str, Any]]]:
    """Every split's probabilities and metrics after training (``report``: the trainer's, for its
    batch size): the splits already ``loaded`` (training and selection) as they are, the others
    (the test splits) opened only now by ``load``.

    Returns split -> (utt_ids, probabilities) and split -> metrics (with bootstrap intervals)."""
    batch_size = int(report["training"]["batch_size"])
    predictions, metrics = {}, {}
    for split in splits:
        data = loaded.get(split) or load(split)
        probabilities = predict_probabilities(model, data, batch_size, torch.device("cpu"))
        predictions[split] = (data.utt_ids, probabilities)
        metrics[split] = split_metrics(data.labels, probabilities.argmax(axis=1), classes, bootstrap)
    return predictions, metrics


def training_summary(
    variant: str,
    settings: Mapping[str, Any],
    dims: Mapping[str, int],
    report: Mapping[str, Any],
    started: float,
    sequences: Mapping[str, Any],
) -> dict[str, Any]:
    """A head variant's ``summary.json``: settings, widths, the trainer's report, the time since
    ``started`` (``time.perf_counter()``), the peak memory and the sequence features' models."""
    return {
        "variant": variant,
        "model": settings,
        "dims": dims,
        **report,
        "seconds": round(time.perf_counter() - started, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "sequences": dict(sequences),
    }


def metrics_document(
    head: str,
    run: HeadRun,
    report: Mapping[str, Any],
    splits: Mapping[str, Mapping[str, Any]],
    feature_sets: Sequence[str],
    features: Mapping[str, Any],
) -> dict[str, Any]:
    """A head variant's metrics document (common/metrics.py ``metrics_document``, so Table 2 reads
    it like any variant): ``head`` is the one "classifier", selected by early stopping on the
    run's selection split; ``feature_sets`` and ``features`` describe what it read."""
    return build_metrics_document(
        run.variant,
        run.title,
        "head",
        feature_sets,
        run.classes,
        head,
        splits,
        run.bootstrap,
        selection={
            "metric": report["training"]["monitor"],
            "rule": "early stopping, best epoch",
            "data": run.selection_split,
            "best_epoch": report["best_epoch"],
        },
        late_weights=None,
        ensemble=None,
        per_classifier={head: {split: headline_metrics(metrics) for split, metrics in splits.items()}},
        features=dict(features),
    )


def save_checkpoint(
    path: str | os.PathLike,
    checkpoint_format: str,
    model: torch.nn.Module,
    dims: Mapping[str, int],
    classes: Sequence[str],
    **extra: Any,
) -> None:
    """The head's weights with its ``model.settings``, widths and classes (and ``extra`` entries a
    head needs to rebuild itself), atomically; read back by :func:`read_head_checkpoint`."""
    payload = {
        "format": checkpoint_format,
        "settings": model.settings,
        "dims": dict(dims),
        "classes": list(classes),
        "state_dict": model.state_dict(),
        **extra,
    }
    write_checked(path, lambda tmp: torch.save(payload, tmp))  # with its SHA-256 record (predict checks it)


def read_head_checkpoint(path: str | os.PathLike, checkpoint_format: str, head: str) -> dict[str, Any]:
    """A head checkpoint's payload (CPU tensors); a clear error for another file."""
    return read_checkpoint(path, checkpoint_format, f"{head} head")


def write_outputs(
    job: Any,
    checkpoint_format: str,
    model: torch.nn.Module,
    summary: Mapping[str, Any],
    document: Mapping[str, Any],
    predictions: Mapping[str, tuple[list[str], np.ndarray]],
    **checkpoint_extra: Any,
) -> None:
    """A head rule's outputs: ``output.model`` (the checkpoint), ``output.summary``, one
    ``output.probabilities`` file per split (``params.splits`` order) and ``output.metrics``; then
    the per-epoch resume state (``params.work_dir``, where the rule has one) is removed."""
    classes = list(job.params.classes)
    save_checkpoint(job.output.model, checkpoint_format, model, summary["dims"], classes, **checkpoint_extra)
    write_json(job.output.summary, summary)
    for split, path in zip(job.params.splits, job.output.probabilities, strict=True):
        write_probabilities(path, *predictions[split], classes)
    write_json(job.output.metrics, document)
    for split, metrics in document["splits"].items():
        log.info("%s %s: %s", document["variant"], split, {name: round(metrics[name], 4) for name in METRICS})
    remove_work_dir(job.params.work_dir)  # the outputs are written: nothing left to resume
