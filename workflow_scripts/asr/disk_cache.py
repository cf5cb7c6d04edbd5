"""Arrays kept on disk, one ``.npy`` file per key: the fine-tune's feature and encoder-state caches.

The process holds no array between accesses, so its memory does not grow with the corpus; the
files live under the fine-tune's work directory, which is keyed by the run's fingerprint
(asr/train.py ``prepare_work_dir``) and removed with it. Entries are written atomically, so
several processes (data-parallel ranks, loader workers) can fill one cache; float32 round-trips
through ``.npy`` bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from workflow_scripts.common.files import atomic_path

#: A cache key: the clip's index in its dataset and the speed factor it was played at.
Key = tuple[int, float]


class DiskArrayCache:
    """Arrays by ``(index, speed)`` key under ``directory`` (created on first use)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, key: Key) -> Path:
        """The file of ``key``: ``<index>_<speed>.npy`` (the speed's shortest repr, e.g. 0.9)."""
        index, speed = key
        return self.directory / f"{int(index)}_{float(speed)!r}.npy"

    def __contains__(self, key: Key) -> bool:
        return self.path(key).is_file()

    def get(self, key: Key) -> np.ndarray | None:
        """The array of ``key``, read into memory, or None when it is not cached."""
        try:
            return np.load(self.path(key), allow_pickle=False)
        except FileNotFoundError:
            return None

    def put(self, key: Key, array: np.ndarray) -> None:
        """Store ``array`` under ``key`` (atomically: a reader never sees half a file)."""
        with atomic_path(self.path(key)) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)

    def discard(self, key: Key) -> None:
        """Forget ``key`` (no error when it is not cached)."""
        self.path(key).unlink(missing_ok=True)

    def keys(self) -> Iterator[Key]:
        """Every cached key."""
        for path in self.directory.glob("*.npy"):
            if path.name.startswith("."):  # an entry being written (atomic_path's temporary name)
                continue
            index, speed = path.stem.split("_", 1)
            yield int(index), float(speed)
