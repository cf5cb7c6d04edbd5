"""Pooled acoustic features with the augmented training copies: the acoustic_aug feature set.

Every split is pooled as pool_features pools the acoustic modality; the training split then gets
the augmented copies' features appended (their labels and speakers from the augmented manifest).
The other splits are the acoustic ones unchanged: only training data is augmented.
"""

import logging
from typing import Any

import numpy as np

from workflow_scripts.common.rule import run_rule
from workflow_scripts.fusion.pooling import Pooled, pool_split, write_pooled

log = logging.getLogger(__name__)


def with_copies(original: Pooled, copies: Pooled) -> Pooled:
    """``original`` followed by ``copies`` (same statistics and width)."""
    if original.X.shape[1] != copies.X.shape[1]:
        raise ValueError(f"augmented features are {copies.X.shape[1]}-d, the training split's {original.X.shape[1]}-d")
    info = {**original.info, "augmented_copies": len(copies.utt_ids), "augmented_source": copies.info["source"]}
    return Pooled(
        original.utt_ids + copies.utt_ids,
        original.labels + copies.labels,
        np.concatenate([original.X, copies.X]),
        info,
        (original.speakers or [""] * len(original.utt_ids)) + (copies.speakers or [""] * len(copies.utt_ids)),
    )


def main(job: Any) -> None:
    """Entry point of the pool_augmented_acoustic rule: one pooled file per split of ``params.splits``."""
    statistics, classes, splits = job.params.pooling["statistics"], job.params.classes, list(job.params.splits)
    for split, features, manifest, output in zip(
        splits, job.input.features, job.input.manifests, job.output.pooled, strict=True
    ):
        pooled = pool_split(features, manifest, statistics, classes)
        if split == job.params.train_split:
            pooled = with_copies(
                pooled, pool_split(job.input.augmented, job.input.augmented_manifest, statistics, classes)
            )
        # The acoustic modality (load_feature_set groups by it); the feature set is acoustic_aug.
        pooled.info.update(modality="acoustic", feature_set="acoustic_aug", split=split)
        write_pooled(output, pooled)
        log.info("acoustic_aug %s: %d utterances x %d", split, len(pooled.utt_ids), pooled.X.shape[1])


if __name__ == "__main__":
    run_rule(main)
