"""The text backends fusion can read (``tefe.backend``; names.TEFE_BACKENDS), registered beside their code.

Light (standard library and names only): rules/tefe_inputs.smk reads it at DAG-build time. ``neural`` is
the paper's encoder architecture select_tefe chose (rules train_tefe / extract_tefe); a
``standalone`` backend is trained and extracted by its own rules (train_tefe_backend,
extract_tefe_backend) through the interface of tefe/backends.py; one that ``writes_tokens`` also
writes its own token states for the fusion heads (extract_tefe_backend_tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

from workflow_scripts.common.registry import Spec, registry


@dataclass(frozen=True)
class TextBackendSpec(Spec):
    """A text backend: the common spec, plus which rules serve it and how its class is called."""

    standalone: bool
    writes_tokens: bool
    # Whether the class takes a thread count (``Class(block, classes, threads)``, ``Class.load(dir, threads)``).
    threaded: bool


# Fields: name, needs_gpu, implementation, standalone, writes_tokens, threaded.
TEXT_BACKENDS: dict[str, TextBackendSpec] = registry(
    # The paper's encoder architectures (train_tefe asks for a GPU).
    TextBackendSpec("neural", True, "workflow_scripts.tefe.models:TextEncoder", False, False, False),
    # TF-IDF + logistic regression: CPU only.
    TextBackendSpec("tfidf", False, "workflow_scripts.tefe.tfidf:TfidfBackend", True, False, False),
    TextBackendSpec("transformer", True, "workflow_scripts.tefe.transformer:TransformerBackend", True, True, True),
)
