"""The fusion stage's checks across config keys (the schema sees one key at a time).

Run by ``workflow_scripts.config.validate_config`` before any job. Light (standard library, names
and fusion/heads/variants): the Snakefile imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_scripts.common import names
from workflow_scripts.fusion.heads.variants import HeadVariant, head_variants


def check_fusion_config(config: Mapping[str, Any]) -> None:
    """The heads' ablations and variants (fusion.heads), the vote's members (fusion.vote.members), and
    the rows that Figure 2 (fusion.figure2.variants) and Table 3 (fusion.table3.variants) show.

    Raises ValueError naming the key.
    """
    fusion, rules_rows = config["fusion"], [names.rules_variant(v) for v in config["challenge"]["rules"]["variants"]]
    heads = head_variants(fusion["heads"])
    known = [*names.CLASSIFIER_VARIANTS, *heads, *rules_rows]
    unknown = [member for member in fusion["vote"]["members"] if member not in known]
    if unknown:
        raise ValueError(f"config fusion.vote.members: {unknown} are not variants of this workflow ({known})")
    rows = report_rows(config)
    unknown = [v for v in fusion["figure2"]["variants"] if v not in rows]
    if unknown:
        raise ValueError(
            f"config fusion.figure2.variants: {unknown} are not made by this workflow "
            f"({rows}; a <variant>+rules row needs <variant> in challenge.rules.variants)"
        )
    text_rows = [row for row in rows if _reads_transcripts(row, fusion, heads)]
    unknown = [v for v in fusion["table3"]["variants"] or [] if v not in text_rows]
    if unknown:
        raise ValueError(
            f"config fusion.table3.variants: {unknown} are not text-dependent rows of this workflow ({text_rows})"
        )


def report_rows(config: Mapping[str, Any]) -> list[str]:
    """Rows of Table 2 (as rules/common.smk get_report_variants): the classifier variants (acoustic_aug
    only with challenge.augmentation.enabled), fusion.heads.variants, the vote (with members), the +rules rows."""
    rows = [v for v in names.CLASSIFIER_VARIANTS if v != names.AUGMENTED_VARIANT]
    rows += [names.AUGMENTED_VARIANT] if config["challenge"]["augmentation"]["enabled"] else []
    rows += list(config["fusion"]["heads"]["variants"])
    rows += [names.VOTE_VARIANT] if config["fusion"]["vote"]["members"] else []
    return rows + [names.rules_variant(v) for v in config["challenge"]["rules"]["variants"]]


def _reads_transcripts(row: str, fusion: Mapping[str, Any], heads: Mapping[str, HeadVariant]) -> bool:
    """Whether report row ``row`` reads an ASR system's transcripts (as rules/common.smk reads_text): a head
    variant whose sequences include text, a vote with such a member, as names.reads_transcripts otherwise."""
    others: dict[str, bool] = {name: _head_reads_text(variant) for name, variant in heads.items()}
    others[names.VOTE_VARIANT] = any(names.reads_transcripts(m, others) for m in fusion["vote"]["members"])
    return names.reads_transcripts(row, others)


def _head_reads_text(variant: HeadVariant) -> bool:
    """Whether a head variant reads the text token sequences (a graph head only through a text node)."""
    if "nodes" in variant.block:
        return any(names.GRAPH_NODE_SOURCES[node] == "text" for node in variant.block["nodes"])
    return True
