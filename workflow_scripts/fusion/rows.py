"""Which report rows and feature sets read an ASR system's transcripts, and so where they live.

The one answer, from the validated ``fusion`` config block, for the rules (at DAG-build time:
only the standard library, ``names``, ``paths`` and the head variants here) and for predict. A
row is a classifier variant (names.VARIANT_FEATURE_SETS), a neural head variant or ablation
(fusion/heads/variants.py), the vote (names.VOTE_VARIANT) or ``<variant>+rules``. A row that reads
transcripts exists once per ASR system (``paths.system_scope``); every other row is shared by all
systems (``paths.SHARED_SCOPE``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_scripts.common import names, paths
from workflow_scripts.fusion.heads.variants import head_variants


def _scope(name: str, reads: bool, system: str | None) -> str:
    """The system's scope when ``reads`` (transcripts), else the shared one."""
    if not reads:
        return paths.SHARED_SCOPE
    if not system:
        raise ValueError(f"{name!r} reads an ASR system's transcripts: it exists once per system, name the system")
    return paths.system_scope(system)


def feature_set_scope(feature_set: str, system: str | None) -> str:
    """The {scope} of a feature set or modality's results for ASR ``system``: its system's when it holds
    text features (names.feature_set_reads_transcripts; ``system`` needed), else shared."""
    return _scope(feature_set, names.feature_set_reads_transcripts(feature_set), system)


def reads_transcripts(row: str, fusion: Mapping[str, Any]) -> bool:
    """Whether report row ``row`` depends on an ASR system's transcripts: every ``+rules`` row (the rules
    read transcripts), a classifier variant reading a text feature set, a head variant whose sequence
    sources include the text (graph: its nodes'), and the vote when one of fusion.vote.members does.

    Raises ValueError for a name that is none of the rows of ``fusion`` (the validated fusion block).
    """
    if row.endswith(names.RULES_SUFFIX):
        names.base_variant(row)  # a clear error for a malformed name
        return True
    if row in names.VARIANT_FEATURE_SETS:
        return any(names.feature_set_reads_transcripts(fs) for fs in names.VARIANT_FEATURE_SETS[row])
    heads = head_variants(fusion["heads"])
    if row in heads:
        return "text" in heads[row].sequence_modalities
    if row == names.VOTE_VARIANT:
        return any(reads_transcripts(member, fusion) for member in fusion["vote"]["members"])
    known = [*names.VARIANT_FEATURE_SETS, *heads, names.VOTE_VARIANT]
    raise ValueError(f"{row!r} is not a row of this workflow ({known}, or <variant>{names.RULES_SUFFIX})")


def row_scope(row: str, system: str | None, fusion: Mapping[str, Any]) -> str:
    """The {scope} of report row ``row``'s results for ASR ``system``: the system's when the row reads
    transcripts (reads_transcripts; ``system`` needed), else shared."""
    return _scope(row, reads_transcripts(row, fusion), system)


def report_rows(config: Mapping[str, Any]) -> list[str]:
    """The rows of Table 2, the confusion matrices and the challenge report, in that order: the classifier
    variants (acoustic_aug only with challenge.augmentation.enabled, the reference variants only as
    fusion.reference_variants names them), fusion.heads.variants, the vote (when fusion.vote.members is
    set), then the ``<variant>+rules`` rows of challenge.rules.variants."""
    optional = (names.AUGMENTED_VARIANT, *names.REFERENCE_FEATURE_SETS)
    rows = [v for v in names.CLASSIFIER_VARIANTS if v not in optional]
    rows += [names.AUGMENTED_VARIANT] if config["challenge"]["augmentation"]["enabled"] else []
    rows += list(config["fusion"]["reference_variants"])
    rows += list(config["fusion"]["heads"]["variants"])
    rows += [names.VOTE_VARIANT] if config["fusion"]["vote"]["members"] else []
    return rows + [names.rules_variant(v) for v in config["challenge"]["rules"]["variants"]]
