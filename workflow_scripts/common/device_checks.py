"""The check before any job runs that the config's CUDA devices are visible (config ``cluster`` aside).

Apart from common/devices.py, which the steps import, so that this DAG-time check is no code input of
any rule (editing it reruns nothing). Torch is imported only when a CUDA device is requested.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def cuda_settings(block: Any, key: str = "config") -> Iterator[tuple[str, str]]:
    """(key path, value) of every ``device`` setting below ``block`` that names a CUDA device."""
    if isinstance(block, Mapping):
        for name, value in block.items():
            path = f"{key}.{name}" if key else str(name)
            if name == "device" and isinstance(value, str) and value.startswith("cuda"):
                yield path, value
            else:
                yield from cuda_settings(value, path)
    elif isinstance(block, list):
        for index, value in enumerate(block):
            yield from cuda_settings(value, f"{key}[{index}]")


def check_cuda_devices(config: Mapping[str, Any]) -> None:
    """Every CUDA device the config requests (any block, used or not) must be visible here, unless
    the jobs run on other machines (config ``cluster``: true, which profiles/slurm sets).

    Torch is imported only when a CUDA device is requested. Raises ValueError naming the key.
    """
    requested = [] if config["cluster"] else list(cuda_settings(config, ""))
    if not requested:
        return
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for key, value in requested:
        index = int(value.partition(":")[2] or 0)
        if index >= visible:
            raise ValueError(
                f"config {key}: {value!r} requested, but this machine sees {visible} CUDA device(s) (expected "
                "auto, cpu or a visible cuda:N; when the jobs run on a cluster, set cluster: true - "
                "profiles/slurm does)"
            )
