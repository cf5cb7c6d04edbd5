"""The TEFE stage's checks before any job runs: the transformer backend's local model directory exists
(common/model_refs.py; a hub id is not looked up).

Run by ``workflow_scripts.config.validate_config``. Light (standard library only): the Snakefile imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_scripts.common.model_refs import check_local_model


def check_tefe_config(config: Mapping[str, Any]) -> None:
    """tefe.transformer.model: a local directory must exist. Raises ValueError naming the key."""
    check_local_model("tefe.transformer.model", config["tefe"]["transformer"]["model"])
