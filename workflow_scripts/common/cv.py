"""Cross-validation folds on the training split, grouped by speaker where speakers are known.

The test splits hold unseen speakers, so folds that put one speaker on both sides overrate
what a model will do on them. One behaviour everywhere (fusion classifiers, ensemble
weights, the SEFE evaluation):

* grouping enabled and every training row has a speaker: StratifiedGroupKFold; with fewer
  speakers than folds the fold count drops to the number of speakers (at least 2), logged;
* grouping disabled, a row without a speaker, or a single speaker: StratifiedKFold, logged
  when grouping was asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

log = logging.getLogger(__name__)

Folds = list[tuple[np.ndarray, np.ndarray]]


def cv_folds(y: np.ndarray, folds: int, seed: int, speakers: Sequence[str] | None = None) -> Folds:
    """Seeded stratified folds of the training labels ``y``: (fitted rows, held-out rows) per fold.

    ``speakers`` (one per row, or None to not group) groups the folds by speaker as the module
    describes. Every class needs at least as many rows as there are folds.
    """
    y = np.asarray(y)
    folds = int(folds)
    groups = None
    if speakers is not None:
        speakers = list(speakers)
        distinct = len(set(speakers))
        if any(not speaker for speaker in speakers):
            log.warning("some training rows have no speaker: CV folds are not grouped by speaker")
        elif distinct < 2:
            log.warning("only %d speaker in the training split: CV folds are not grouped by speaker", distinct)
        else:
            if distinct < folds:
                log.warning(
                    "%d speakers in the training split, fewer than %d folds: %d speaker-grouped folds",
                    distinct,
                    folds,
                    distinct,
                )
                folds = distinct
            groups = np.asarray(speakers)
    _, counts = np.unique(y, return_counts=True)
    if counts.min() < folds:
        raise ValueError(
            f"stratified {folds}-fold CV needs at least {folds} training utterances of every class; "
            f"the training split has {counts.tolist()} per class"
        )
    rows = np.zeros((len(y), 1))
    if groups is not None:
        return list(StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(rows, y, groups))
    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(rows, y))
