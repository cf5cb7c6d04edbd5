"""Fitting of one text backend on the text corpus's training split (rule train_tefe_backend).

The backend (``tfidf``, ``transformer``, :mod:`workflow_scripts.tefe.backends`) is fitted on
the training split only; the dev split is scored (and stops the transformer's fine-tuning
early). The text test split is never read here. Writes the model directory and ``metrics.json``
(dev WA / UA / WF1, sizes, timing).
"""

import logging
import time
from typing import Any

from workflow_scripts.common.files import write_json
from workflow_scripts.common.rule import run_rule
from workflow_scripts.tefe.backends import build_text_backend
from workflow_scripts.tefe.train import read_labelled_texts, split_scores

log = logging.getLogger(__name__)


def fit_backend(name: str, config: Any, train, dev, classes, threads: int = 1) -> tuple[Any, dict[str, Any]]:
    """Fit backend ``name`` on ``train`` ((texts, class indices)); score it on ``dev``."""
    started = time.perf_counter()
    backend = build_text_backend(name, config, classes, threads)
    backend.fit(*train, dev=dev)
    validation = split_scores(dev[1], backend.predict(dev[0]), len(classes))
    metrics = {
        "backend": name,
        "classes": list(classes),
        "settings": backend.settings,
        "feature_dim": backend.feature_dim,
        "train_size": len(train[0]),
        "dev_size": len(dev[0]),
        "validation": validation,
        "train_seconds": round(time.perf_counter() - started, 3),
        **backend.training_summary(),
    }
    return backend, metrics


def main(job: Any) -> None:
    """Entry point of the train_tefe_backend rule (``job``: the rule's ``snakemake`` object)."""
    name, classes = job.wildcards.backend, list(job.params.classes)
    train = read_labelled_texts(job.input.train, classes)
    dev = read_labelled_texts(job.input.dev, classes)
    backend, metrics = fit_backend(name, job.params.block, train, dev, classes, job.threads)
    metrics["inputs"] = {"train": str(job.input.train), "dev": str(job.input.dev)}
    backend.save(job.output.model)
    write_json(job.output.metrics, metrics)
    log.info("%s: dev %s, %.1fs", name, metrics["validation"], metrics["train_seconds"])


if __name__ == "__main__":
    run_rule(main, keep=True)
