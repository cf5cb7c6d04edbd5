"""``layer: auto``: the encoder layer chosen on the training or selection split, never a test split.

Three steps (rules/sefe.smk): ``extract_sefe_layers`` pools every candidate layer of the training
(and selection) split side by side (the backend with ``layer: auto``, one encoder pass);
``choose_sefe_layer`` (:mod:`workflow_scripts.sefe.choose_layer`, which holds the scoring) evaluates
each layer as evaluate_sefe does (scaler + logistic regression fitted on train, C by speaker-grouped CV on train)
and writes the choice (:data:`paths.SEFE_LAYER_CHOICE`); ``extract_sefe`` (and the frames and
augmented copies) then encode every split with the chosen layer (:func:`resolve_layer`), whose
record goes into the features' metadata and the SEFE evaluation.

Criteria (``layer_choice.criterion``): ``selection`` - UA on the selection split
(``task.selection_split``); ``cv`` - the best mean balanced accuracy of that cross-validation
inside the training split. Ties go to the earlier candidate.

Here only what the extraction steps and predict need (light: no classifier code, so editing the
evaluation reruns no extraction).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from workflow_scripts.common.files import read_json

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
