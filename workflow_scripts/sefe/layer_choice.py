"""``layer: auto``: the encoder layer chosen on the training or selection split, never a test split.

Three steps (rules/sefe.smk): ``extract_sefe_layers`` pools every candidate layer of the training
(and selection) split side by side (the backend with ``layer: auto``, one encoder pass);
``choose_sefe_layer`` (:mod:`workflow_scripts.sefe.choose_layer`) evaluates each layer as
evaluate_sefe does (scaler + logistic regression fitted on train, C by speaker-grouped CV on train)
and writes the choice (:data:`paths.SEFE_LAYER_CHOICE`); ``extract_sefe`` (and the frames and
augmented copies) then encode every split with the chosen layer (:func:`resolve_layer`), whose
record goes into the features' metadata and the SEFE evaluation.

Criteria (``layer_choice.criterion``): ``selection`` - UA on the selection split
(``task.selection_split``); ``cv`` - the best mean balanced accuracy of that cross-validation
inside the training split. Ties go to the earlier candidate.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import cross_val_score

from workflow_scripts.common.cv import cv_folds
from workflow_scripts.common.files import read_json
from workflow_scripts.sefe.evaluate import LabelledSplit, build_classifier, fit_classifier, score_split

AUTO = "auto"
CHOICE_FORMAT = "dfat-sefe-layer-choice-1"


def layer_value(name: str) -> int | str:
    """A layer name of the choice as the block's ``layer`` takes it (an index, last or average)."""
    return int(name) if name.lstrip("-").isdigit() else name


def resolve_layer(block: Mapping[str, Any], choice_path: str | os.PathLike | None) -> tuple[dict, dict | None]:
    """The backend block with ``layer: auto`` replaced by the chosen layer, and the choice record
    (the block unchanged and None when its layer is fixed)."""
    if block.get("layer") != AUTO:
        return dict(block), None
    if choice_path is None:
        raise ValueError("layer: auto needs the layer choice file (rule choose_sefe_layer)")
    choice = read_json(choice_path)
    if choice.get("format") != CHOICE_FORMAT:
        raise ValueError(f"{choice_path}: not a layer choice file ({CHOICE_FORMAT})")
    return {**block, "layer": layer_value(choice["layer"])}, choice


def job_block(job: Any) -> tuple[dict, dict | None]:
    """A SEFE job's backend block (``params.backend``) with ``layer: auto`` resolved from its optional
    ``layer_choice`` input; without that input (extract_sefe_layers) the block stays as it is."""
    value = getattr(job.input, "layer_choice", None)
    choice = [value] if isinstance(value, str) else list(value or [])  # a path, or a list of none or one
    if not choice:
        return dict(job.params.backend), None
    return resolve_layer(job.params.backend, choice[0])


def run_block(config: Mapping[str, Any], name: str, run_dir: str | os.PathLike) -> tuple[dict, dict | None]:
    """predict's backend block ``sefe.<name>`` with ``layer: auto`` resolved from the run's choice file."""
    from workflow_scripts.common import paths

    block = config["sefe"][name]
    choice = paths.in_run(paths.SEFE_LAYER_CHOICE.format(backend=name), run_dir) if block.get("layer") == AUTO else None
    return resolve_layer(block, choice)


def metadata_record(choice: Mapping[str, Any]) -> dict[str, Any]:
    """What features and evaluations record of a layer choice."""
    keys = ("layer", "criterion", "split", "score", "scores", "statistics")
    return {"layer": "auto", **{f"chosen_{k}" if k == "layer" else k: choice[k] for k in keys}}


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
