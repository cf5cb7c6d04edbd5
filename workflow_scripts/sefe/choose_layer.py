"""The choose_sefe_layer rule: ``layer: auto``'s choice from the training (and selection) split's
all-layer features (:mod:`workflow_scripts.sefe.layer_choice`); no test split is an input.

Every candidate layer is scored as evaluate_sefe would fit it (scaler + logistic regression on
train, C by speaker-grouped CV on train): by UA on the selection split, or by the best
cross-validated balanced accuracy inside the training split (``layer_choice.criterion: cv``).
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import cross_val_score

from workflow_scripts.common.cv import cv_folds
from workflow_scripts.common.files import write_json
from workflow_scripts.common.rule import run_rule
from workflow_scripts.sefe.evaluate import (
    LabelledSplit,
    build_classifier,
    fit_classifier,
    labelled_features,
    score_split,
)
from workflow_scripts.sefe.layer_choice import CHOICE_FORMAT

log = logging.getLogger(__name__)


def layer_view(split: LabelledSplit, index: int, layers: int, statistics: Sequence[str]) -> LabelledSplit:
    """``split`` with only layer ``index`` of each statistic (the columns are statistic-major, each
    statistic ``layers`` blocks wide)."""
    width = split.x.shape[1] // (len(statistics) * layers)
    blocks = [
        split.x[:, (s * layers + index) * width : (s * layers + index + 1) * width] for s in range(len(statistics))
    ]
    return LabelledSplit(split.utt_ids, np.hstack(blocks), split.labels, split.codes, split.speakers, split.metadata)


def cv_score(train: LabelledSplit, cfg: Mapping[str, Any]) -> float:
    """The best (over ``cfg["C"]``) mean balanced accuracy of speaker-grouped CV inside the training split."""
    folds = cv_folds(train.labels, int(cfg["cv_folds"]), int(cfg["seed"]), train.speakers)
    return max(
        float(
            cross_val_score(
                build_classifier(c, cfg), train.x, train.labels, cv=folds, scoring="balanced_accuracy"
            ).mean()
        )
        for c in cfg["C"]
    )


def choose_layer(
    train: LabelledSplit,
    selection: LabelledSplit | None,
    cfg: Mapping[str, Any],
    classes: Sequence[str],
    criterion: str,
    splits: Mapping[str, str],
) -> dict[str, Any]:
    """Score every layer of the all-layer features and pick the best; returns the choice record.

    ``train`` / ``selection``: the all-layer features (metadata ``layer_names``) with the
    statistics ``cfg["statistics"]``; ``splits``: the names of the two splits, for the record.
    """
    if "layer_names" not in train.metadata:
        raise ValueError(
            f"the training split's features hold one layer ({train.metadata.get('layer')}), not every layer"
        )
    names = list(train.metadata["layer_names"])
    statistics = list(cfg["statistics"])
    if criterion == "selection" and selection is None:
        raise ValueError("layer_choice.criterion selection needs the selection split's features")
    scores: dict[str, float] = {}
    for index, name in enumerate(names):
        fitted = layer_view(train, index, len(names), statistics)
        if criterion == "cv":
            scores[name] = round(cv_score(fitted, cfg), 4)
        else:
            model, _ = fit_classifier(fitted.x, fitted.labels, fitted.speakers, cfg, splits["train"])
            held_out = layer_view(selection, index, len(names), statistics)
            scores[name] = round(float(score_split(model, held_out, classes)["UA"]), 4)
    chosen = max(names, key=lambda name: scores[name])  # the first of equal scores
    return {
        "format": CHOICE_FORMAT,
        "layer": chosen,
        "criterion": criterion,
        "split": splits["train"] if criterion == "cv" else splits["selection"],
        "score": "UA" if criterion == "selection" else "speaker-grouped CV balanced accuracy on train",
        "scores": scores,
        "statistics": statistics,
        "backend": train.metadata.get("backend"),
        "checkpoint": train.metadata.get("checkpoint"),
    }


def main(job: Any) -> None:
    """Entry point of the choose_sefe_layer rule (``job``: the rule's ``snakemake`` object)."""
    cfg, classes, criterion = job.params.evaluation, job.params.classes, job.params.layer_choice["criterion"]
    statistics = list(cfg["statistics"])
    train = labelled_features(job.input.train_features, job.input.train_manifest, statistics, classes)
    selection = None
    if criterion == "selection":
        selection = labelled_features(job.input.selection_features, job.input.selection_manifest, statistics, classes)
    splits = {"train": job.params.train_split, "selection": job.params.selection_split}
    record = choose_layer(train, selection, cfg, classes, criterion, splits)
    write_json(job.output.choice, record)
    log.info("layer %s chosen by %s on %s: %s", record["layer"], criterion, record["split"], record["scores"])


if __name__ == "__main__":
    run_rule(main)
