"""Checks of a corpus block that need the configured splits (the schema cannot see them).

Run twice: before any job (data/config_checks.py within workflow_scripts.config.validate_config,
so a dry run and the config checker fail) and by the ingestion step.
Light on purpose (no pandas): the rules import it when the DAG is built. ``spec`` is a validated
block (defaults filled).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def check_split_block(spec: Mapping[str, Any], split_names: Sequence[str], where: str) -> None:
    """Fail naming ``<where>.split.fractions`` when policy stratified lacks fractions or they name other splits.

    ``where`` is the block's key path (``corpora.demo``); per-split tables take no fractions.
    """
    split = spec["split"]
    if isinstance(spec["table"], Mapping) or split["policy"] != "stratified":
        return
    fractions = split["fractions"]
    if not fractions:
        raise ValueError(
            f"invalid config at '{where}.split.fractions': split.policy is stratified but no fractions are given; "
            f"give a share for each of the splits {list(split_names)}, or use split.policy: table"
        )
    if sorted(fractions) != sorted(split_names):
        extra = sorted(set(fractions) - set(split_names))
        missing = [name for name in split_names if name not in fractions]
        raise ValueError(
            f"invalid config at '{where}.split.fractions': keys {sorted(fractions)} must be the splits "
            f"{list(split_names)} (not splits: {extra}; missing: {missing})"
        )
