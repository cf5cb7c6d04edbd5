"""Where a configured model lives, for the checks before any job runs (``<stage>/config_checks.py``).

A model setting names one of: ``finetuned`` (the ASR stage's fine-tuned model), a directory that a
rule of this workflow builds (under ``results/``), a local directory, or a hub id (``name`` or
``owner/name``, resolved when a job loads it: common/hub.py). Only local directories can be checked
before the run: a missing one is an error naming the key, and a layer index is checked against the
model's own config.json where the directory exists (or, for a model this workflow builds, where its
depth is known in advance). Hub ids are never looked up here. Standard library only (the Snakefile
imports it through the config checks).
"""

from __future__ import annotations

import json
from pathlib import Path

from workflow_scripts.common import names, paths
from workflow_scripts.common.hub import looks_like_path

# Depths of the models this workflow builds, known before the rules that build them have run:
# OpenAI Whisper base (common/pretrained.py) has 6 encoder layers in its config.json.
BUILT_MODEL_CONFIG = {paths.PRETRAINED_WHISPER_BASE: {"encoder_layers": 6}}


def built_by_workflow(model: str) -> bool:
    """Whether ``model`` is the fine-tuned model or a directory that a rule of this workflow builds."""
    return model == names.FINETUNED or model.startswith(f"{paths.RESULTS}/")


def local_directory(model: str) -> Path | None:
    """The directory ``model`` names, or None for a hub id (not a directory here and not path-like)."""
    if model == names.FINETUNED:
        return Path(paths.ASR_FINETUNED_MODEL)
    directory = Path(model).expanduser()
    if directory.is_dir() or built_by_workflow(model) or looks_like_path(model):
        return directory
    return None


def check_local_model(key: str, model: str | None) -> None:
    """A local model directory named at ``key`` must exist (hub ids and built models are not checked)."""
    if model is None or built_by_workflow(model):
        return
    directory = local_directory(model)
    if directory is not None and not directory.is_dir():
        raise ValueError(
            f"config {key}: {model!r} is not a directory (expected an existing local model directory, "
            "or a hub id written owner/name)"
        )


def model_config(model: str) -> dict | None:
    """The config.json of a local or built model where it is known now, else None (a hub id, not built yet)."""
    directory = local_directory(model)
    if directory is None:
        return None
    config_file = directory / "config.json"
    if config_file.is_file():
        try:
            return json.loads(config_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{config_file}: not valid JSON ({error})") from None
    return BUILT_MODEL_CONFIG.get(model)


def check_layer_index(key: str, layer: int | str, model_key: str, model: str, depth_key: str) -> None:
    """An integer ``layer`` (hidden states: 0 the embeddings .. depth; negative from the end) must lie
    within the depth (``depth_key`` of config.json) of ``model`` where that depth is known now."""
    if not isinstance(layer, int):
        return
    config = model_config(model)
    if config is None or depth_key not in config:
        return
    depth = int(config[depth_key])
    if not -(depth + 1) <= layer <= depth:
        raise ValueError(
            f"config {key}: {layer} is out of range for {model_key} {model!r}, which has {depth} layers "
            f"({depth_key} in its config.json): expected an index in {-(depth + 1)}..{depth}, last or average"
        )
