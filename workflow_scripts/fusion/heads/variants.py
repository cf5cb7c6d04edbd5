"""The variants of the neural fusion heads: each head of ``names.HEADS``, and each ablation of
``fusion.heads.ablations`` (a named set of overrides of one head's block).

An ablation is its own variant, trained by its head's rule with the head's block updated by the
overrides, so editing one ablation reruns only that variant (and the report); editing the head's
block reruns the head and all its ablations. Used by the rules, ``fusion/rows.py`` and ``predict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflow_scripts.common import names
from workflow_scripts.fusion.heads.registry import HEADS

# An ablation key beside the head's own: train with the head's seed plus this (e.g. vote members).
SEED_OFFSET = "seed_offset"


@dataclass(frozen=True)
class HeadVariant:
    """One trainable head variant: its name, its head, the block it trains with and its overrides."""

    name: str
    head: str
    block: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def sequence_modalities(self) -> frozenset[str]:
        """The sequence feature sets the variant reads (its head's registry entry says, from its block)."""
        return HEADS[self.head].sequence_sources(self.block)


def head_variants(heads: Mapping[str, Any]) -> dict[str, HeadVariant]:
    """Every variant defined by the ``fusion.heads`` block (validated, defaults filled), by name.

    Raises ValueError naming the key for an ablation of an unknown head, an override key the
    head's block lacks, a name taken by another variant, or an unknown entry of ``variants``.
    """
    variants = {head: HeadVariant(head, head, dict(heads[head])) for head in names.HEADS if head in heads}
    for name, spec in heads["ablations"].items():
        where = f"config fusion.heads.ablations.{name}"
        if name in names.CLASSIFIER_VARIANTS or name in names.HEADS or name == names.VOTE_VARIANT:
            raise ValueError(f"{where}: {name!r} is already a variant; choose another name")
        overrides = dict(spec)
        head = overrides.pop("head", None)
        if head not in variants:
            raise ValueError(f"{where}.head: {head!r}, expected one of {sorted(variants)}")
        unknown = sorted(set(overrides) - set(heads[head]) - {SEED_OFFSET})
        if unknown:
            raise ValueError(f"{where}: {unknown} are not keys of fusion.heads.{head} ({sorted(heads[head])})")
        block = {**heads[head], **overrides}
        if SEED_OFFSET in block:  # another seed that still follows the head's (and so the top-level) seed
            block["seed"] = int(heads[head]["seed"]) + int(block.pop(SEED_OFFSET))
        variants[name] = HeadVariant(name, head, block, overrides)
    missing = [name for name in heads["variants"] if name not in variants]
    if missing:
        raise ValueError(
            f"config fusion.heads.variants: {missing} are neither heads {list(names.HEADS)} "
            f"nor ablations in fusion.heads.ablations ({sorted(set(variants) - set(names.HEADS))})"
        )
    return variants
