"""The compute device of a model-running step."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else the CPU; ``cpu`` / ``cuda[:n]`` as given.

    A CUDA device requested where none is visible is an error, not a silent CPU run.
    """
    import torch  # here, not at import time: the weights-free SEFE backend never loads torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available (use device: auto or cpu)")
    return device
