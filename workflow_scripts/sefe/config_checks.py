"""The SEFE stage's checks before any job runs: local model directories exist and a layer index lies
within the model's depth where it is known (common/model_refs.py). Hub ids are not looked up.

Run by ``workflow_scripts.config.validate_config``. Light (standard library only): the Snakefile imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_scripts.common.model_refs import check_layer_index, check_local_model

# Backends with a `model` and a `layer` setting, and the config.json key that holds their depth.
LAYERED_BACKENDS = {"whisper_encoder": "encoder_layers", "wavlm": "num_hidden_layers"}
MODEL_BACKENDS = ("whisper_encoder", "wavlm", "emotion2vec")


def check_sefe_config(config: Mapping[str, Any]) -> None:
    """sefe.<backend>.model (a local directory must exist) and sefe.<backend>.layer (within the model).

    Raises ValueError naming the key.
    """
    sefe = config["sefe"]
    for backend in MODEL_BACKENDS:
        check_local_model(f"sefe.{backend}.model", sefe[backend]["model"])
    for backend, depth_key in LAYERED_BACKENDS.items():
        block = sefe[backend]
        check_layer_index(f"sefe.{backend}.layer", block["layer"], f"sefe.{backend}.model", block["model"], depth_key)
