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

from workflow_scripts.common.registry import lookup
from workflow_scripts.tefe.registry import TEXT_BACKENDS, TextBackendSpec

# The backends with their own rules and this interface (not the paper's neural encoders).
STANDALONE_BACKENDS: dict[str, TextBackendSpec] = {name: s for name, s in TEXT_BACKENDS.items() if s.standalone}


def standalone_spec(name: str) -> TextBackendSpec:
    """The registered standalone backend ``name`` (tefe/registry.py)."""
    return lookup(STANDALONE_BACKENDS, name, "TEFE backend")


def build_text_backend(name: str, config: Mapping[str, Any], classes: Sequence[str], threads: int = 1) -> Any:
    """An unfitted backend ``name`` with its config block (tefe.<name>)."""
    spec = standalone_spec(name)
    return spec.load()(config, classes, *([threads] if spec.threaded else []))


def load_text_backend(name: str, directory: str | os.PathLike, threads: int = 1) -> Any:
    """A fitted backend ``name`` from its model directory."""
    spec = standalone_spec(name)
    return spec.load().load(directory, *([threads] if spec.threaded else []))
