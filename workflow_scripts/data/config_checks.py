"""The data stage's checks across config keys (the schema sees one key at a time).

Run by ``workflow_scripts.config.validate_config`` before any job, so a dry run and the config
checker refuse the same configs. Light (standard library, names and corpus_config): the
Snakefile imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_scripts.common import names
from workflow_scripts.data.corpus_config import check_split_block


def check_data_config(config: Mapping[str, Any]) -> None:
    """The split roles of ``task``, ``ser_corpus`` naming a corpus, and each corpus's split fractions.

    Raises ValueError naming the key.
    """
    names.split_roles(config["task"])
    if config["ser_corpus"] not in config["corpora"]:
        raise ValueError(
            f"config: ser_corpus {config['ser_corpus']!r} is not a key of corpora {sorted(config['corpora'])}"
        )
    for name, block in config["corpora"].items():
        check_split_block(block, config["task"]["splits"], f"corpora.{name}")
    check_split_block(config["text_corpus"], names.TEXT_SPLITS, "text_corpus")
