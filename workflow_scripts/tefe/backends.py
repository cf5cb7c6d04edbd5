"""The text backends beside the paper's four architectures (``tefe.backend``; docs/tefe.md).

Each backend is fitted on the text corpus's training split (rule train_tefe_backend), scored on
its dev split, stored in a model directory, and writes the features contract for fusion (rule
extract_tefe_backend). Interface: ``fit(texts, y, dev=None)`` (``dev``: the selection split,
only for early stopping), ``predict(texts)`` (class indices),
``features(texts)`` (statistic -> float32 [n, feature_dim]), ``feature_dim``, ``metadata()``,
``save(directory)`` and the class method ``load(directory)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from workflow_scripts.common.names import TEFE_OTHER_BACKENDS


def build_text_backend(name: str, config: Mapping[str, Any], classes: Sequence[str], threads: int = 1) -> Any:
    """An unfitted backend ``name`` with its config block (tefe.<name>)."""
    if name == "tfidf":
        from workflow_scripts.tefe.tfidf import TfidfBackend

        return TfidfBackend(config, classes)
    if name == "transformer":
        from workflow_scripts.tefe.transformer import TransformerBackend

        return TransformerBackend(config, classes, threads)
    raise ValueError(f"unknown TEFE backend {name!r}; expected one of {TEFE_OTHER_BACKENDS}")


def load_text_backend(name: str, directory: str | os.PathLike, threads: int = 1) -> Any:
    """A fitted backend ``name`` from its model directory."""
    if name == "tfidf":
        from workflow_scripts.tefe.tfidf import TfidfBackend

        return TfidfBackend.load(directory)
    if name == "transformer":
        from workflow_scripts.tefe.transformer import TransformerBackend

        return TransformerBackend.load(directory, threads)
    raise ValueError(f"unknown TEFE backend {name!r}; expected one of {TEFE_OTHER_BACKENDS}")
