"""What a head's predictor gets from predict, and the width check both heads make.

predict (workflow_scripts/predict.py) computes the sequence features of new audio as the rules
compute them and hands them to a head's predictor through :class:`SequenceInputs`; each head
module's ``load_predictor(model_path, inputs)`` (fusion/heads/registry.py names it) returns an
object with ``classes`` and ``predict(audio, transcripts) -> probabilities``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np


class SequenceInputs(Protocol):
    """The sequence features of new audio, computed as their rules compute them."""

    def __call__(self, source: str, inputs: Sequence[str]) -> list[np.ndarray]:
        """The ``source`` matrices (acoustic frames, text token states, prosody tokens) of ``inputs``
        (audio paths; transcripts for ``text``), one per input."""

    def vocabulary(self, source: str) -> int:
        """The number of tokens of a token source (``prosody``: the run's bins)."""


class HeadPredictor(Protocol):
    """A trained head variant, ready to predict."""

    classes: list[str]

    def predict(self, audio: Sequence[str], transcripts: Sequence[str]) -> np.ndarray:
        """Class probabilities (rows: files, columns: ``classes``) of audio files and their transcripts."""


def check_widths(matrices: Mapping[str, Sequence[np.ndarray]], widths: Mapping[str, int], what: str) -> None:
    """Sequence matrices as wide as the head was trained on, else an error naming the modality."""
    for source, items in matrices.items():
        found = {int(m.shape[1]) for m in items} - {int(widths[source])}
        if found:
            raise ValueError(
                f"{source} sequences of width {sorted(found)}, but the {what} was trained on width "
                f"{widths[source]} (another sefe / tefe configuration than the run's?)"
            )
