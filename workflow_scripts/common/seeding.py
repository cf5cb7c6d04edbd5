"""One seeding call for every stochastic step."""

from __future__ import annotations

import contextlib
import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when installed) torch for a reproducible step."""
    random.seed(seed)
    np.random.seed(seed)
    with contextlib.suppress(ImportError):
        import torch

        torch.manual_seed(seed)
