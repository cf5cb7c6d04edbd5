"""Class names to indices, the one place an unknown label is caught."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_LISTED = 5


def encode_labels(
    labels: Sequence[str], classes: Sequence[str], where: str, utt_ids: Sequence[str] | None = None
) -> np.ndarray:
    """Indices into ``classes`` of ``labels``; an unknown label is an error naming ``where``
    (a file) and, when given, the first utterances that carry one."""
    index = {name: i for i, name in enumerate(classes)}
    unknown = [i for i, name in enumerate(labels) if name not in index]
    if unknown:
        if utt_ids is not None:
            detail = ", ".join(f"utt_id {utt_ids[i]!r} has {labels[i]!r}" for i in unknown[:MAX_LISTED])
        else:
            detail = f"labels {sorted({str(labels[i]) for i in unknown})}"
        raise ValueError(f"{where}: labels not in task.classes {list(classes)}: {detail}")
    return np.fromiter((index[name] for name in labels), dtype=np.int64, count=len(labels))
