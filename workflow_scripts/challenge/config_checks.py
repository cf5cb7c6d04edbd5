"""The challenge stage's checks across config keys (the schema sees one key at a time).

Run by ``workflow_scripts.config.validate_config`` before any job. Light (standard library and
names only): the Snakefile imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_scripts.common import names


def check_challenge_config(config: Mapping[str, Any]) -> None:
    """challenge.augmentation against who reads the copies: the ASR training splits must hold the
    training split (augmentation.asr), and the SEFE stage must make the acoustic features (enabled).

    Raises ValueError naming the key.
    """
    augmentation = config["challenge"]["augmentation"]
    train_split = names.split_roles(config["task"]).train
    train_splits = config["asr"]["finetune"]["train_splits"]
    if augmentation["asr"] and train_split not in train_splits:
        raise ValueError(
            f"config challenge.augmentation.asr: the copies are rows of the training split {train_split!r}, "
            f"which asr.finetune.train_splits {train_splits} does not list"
        )
    if augmentation["enabled"] and config["fusion"]["features"]["acoustic"]:
        raise ValueError(
            "config challenge.augmentation.enabled needs the SEFE stage's features of the augmented audio; "
            "fusion.features.acoustic points at precomputed files instead"
        )
