"""The ASR stage's checks across config keys (the schema sees one key at a time).

Run by ``workflow_scripts.config.validate_config`` before any job. Light (standard library and
names only): the Snakefile imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_scripts.common import names
from workflow_scripts.common.model_refs import check_local_model


def check_asr_config(config: Mapping[str, Any]) -> None:
    """asr.systems (names unique), asr.primary_system (one of them), the fine-tuning data
    (asr.finetune: known corpora, never a test split or the checkpoint-selecting split) and every
    model setting naming a local directory (it must exist; hub ids are not looked up).

    Raises ValueError naming the key.
    """
    names.asr_systems(config["asr"])
    names.primary_system(config["asr"])
    check_finetune_data(config["asr"]["finetune"], config)
    check_asr_models(config["asr"])
    check_finetune_processes(config["asr"]["finetune"])


def check_asr_models(asr: Mapping[str, Any]) -> None:
    """asr.finetune.base_model, asr.transcribe.model and each system's and benchmark backbone's model:
    a local directory must exist (common/model_refs.py)."""
    check_local_model("asr.finetune.base_model", asr["finetune"]["base_model"])
    check_local_model("asr.transcribe.model", asr["transcribe"]["model"])
    for index, entry in enumerate(asr["systems"]):
        check_local_model(f"asr.systems[{index}].model", entry.get("model"))
    for index, entry in enumerate(asr["benchmark"]["backbones"]):
        check_local_model(f"asr.benchmark.backbones[{index}].model", entry["model"])


def check_finetune_data(block: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """asr.finetune's train_corpora are corpora; its train_splits hold no test split and not the
    eval_split, which is a fitting split of the task."""
    roles = names.split_roles(config["task"])
    test_splits = list(roles.test)
    unknown = [c for c in block["train_corpora"] if c not in config["corpora"]]
    if unknown:
        raise ValueError(
            f"config asr.finetune.train_corpora: {unknown} are not keys of corpora {sorted(config['corpora'])}"
        )
    forbidden = [s for s in block["train_splits"] if s in test_splits or s == block["eval_split"]]
    if forbidden:
        raise ValueError(
            f"config asr.finetune.train_splits: {forbidden} may not be trained on "
            f"(test splits {test_splits}; eval_split {block['eval_split']!r})"
        )
    if block["eval_split"] not in roles.fitting:
        raise ValueError(
            f"config asr.finetune.eval_split: {block['eval_split']!r} must be one of {list(roles.fitting)} "
            f"(not a test split {test_splits})"
        )


def check_finetune_processes(block: Mapping[str, Any]) -> None:
    """asr.finetune.batch_size, the global batch, splits evenly across asr.finetune.processes."""
    if block["batch_size"] % block["processes"]:
        raise ValueError(
            f"config asr.finetune.batch_size: {block['batch_size']} is the global batch, split across "
            f"asr.finetune.processes ({block['processes']}); it must be a multiple of it"
        )
