"""The fusion stage's checks across config keys (the schema sees one key at a time).

Run by ``workflow_scripts.config.validate_config`` before any job. Light (standard library, names,
fusion/heads/variants and fusion/rows): the Snakefile imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_scripts.common import names
from workflow_scripts.fusion.heads.variants import head_variants
from workflow_scripts.fusion.rows import reads_transcripts, report_rows


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
    text_rows = [row for row in rows if reads_transcripts(row, fusion)]
    unknown = [v for v in fusion["table3"]["variants"] or [] if v not in text_rows]
    if unknown:
        raise ValueError(
            f"config fusion.table3.variants: {unknown} are not text-dependent rows of this workflow ({text_rows})"
        )
