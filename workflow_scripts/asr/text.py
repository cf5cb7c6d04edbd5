"""ASR text normalisation and WER / CER / SyER scoring, shared by training targets and scoring.

The same :func:`normalize_text` with the same config block (``asr.normalize``) turns reference
transcripts into fine-tuning targets and turns references and hypotheses into the strings
that jiwer scores, so a model is never penalised for a convention it was trained on.

Syllables (the VLSP 2025 challenge's SyER): Vietnamese writes one syllable per space-separated
token, so the syllables of a transcript are the whitespace tokens of its normalised text
(:func:`syllables`). SyER is the edit distance over those tokens; it equals this module's WER,
whose words are the same tokens, and would differ from a WER over segmented words
("làm_việc").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jiwer

DIGITS = ["không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín"]
# Scale words of successive groups of three digits (units, thousands, millions); billions recurse.
SCALES = ["", "nghìn", "triệu"]
BILLION = 10**9

# A number as written in Vietnamese: dots group thousands (1.000.000), a comma starts decimals
# (a dot not followed by a group of three digits is read as a decimal point too).
_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:\.\d{3})+|\d+)(?:[,.](\d+))?(?!\w)")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class NormalizeConfig:
    """What :func:`normalize_text` does (config block ``asr.normalize``)."""

    lowercase: bool = True
    remove_punctuation: bool = True
    numbers_to_words: bool = True
    abbreviations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> NormalizeConfig:
        """Build from the validated ``asr.normalize`` block (every key, the schema's defaults filled in),
        naming any unknown or missing key."""
        known = set(cls.__dataclass_fields__)
        unknown, missing = sorted(set(block) - known), sorted(known - set(block))
        if unknown or missing:
            raise ValueError(f"asr.normalize: unknown keys {unknown}, missing keys {missing}; expected {sorted(known)}")
        return cls(**dict(block))


def _below_thousand(n: int, full: bool) -> list[str]:
    """Words of 0 < n < 1000; ``full`` reads the hundreds even when zero ("không trăm")."""
    hundreds, rest = divmod(n, 100)
    tens, units = divmod(rest, 10)
    words: list[str] = []
    if hundreds or full:
        words += [DIGITS[hundreds], "trăm"]
    if tens == 0:
        if units:
            if words:
                words.append("lẻ")
            words.append(DIGITS[units])
        return words
    words.append("mười" if tens == 1 else f"{DIGITS[tens]} mươi")
    if units == 1 and tens > 1:
        words.append("mốt")
    elif units == 5:
        words.append("lăm")
    elif units:
        words.append(DIGITS[units])
    return words


def number_to_words(n: int) -> str:
    """Read a non-negative integer in Vietnamese (northern usage), e.g. 2024 -> "hai nghìn không trăm hai mươi bốn"."""
    if n < 0:
        raise ValueError(f"number_to_words: expected a non-negative integer, got {n}")
    if n == 0:
        return DIGITS[0]
    if n >= BILLION:
        high, low = divmod(n, BILLION)
        head = f"{number_to_words(high)} tỷ"
        return head if low == 0 else f"{head} {_read_groups(low, leading=False)}"
    return _read_groups(n, leading=True)


def _read_groups(n: int, leading: bool) -> str:
    """Read 0 < n < 10**9 group by group; a group after a higher one reads its zero hundreds."""
    groups = []
    while n:
        n, group = divmod(n, 1000)
        groups.append(group)
    words: list[str] = []
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            continue
        full = bool(words) or not leading
        words += _below_thousand(group, full=full and group < 100)
        if SCALES[index]:
            words.append(SCALES[index])
    return " ".join(words)


def _spell_number(match: re.Match[str]) -> str:
    integer = int(match.group(1).replace(".", ""))
    text = number_to_words(integer)
    if match.group(2):
        decimals = match.group(2)
        # Leading zeros are read digit by digit ("3,05" -> "ba phẩy không năm").
        zeros = len(decimals) - len(decimals.lstrip("0"))
        tail = [DIGITS[0]] * zeros + ([number_to_words(int(decimals))] if decimals.strip("0") else [])
        text = " ".join([text, "phẩy", *tail])
    return f" {text} "


def _abbreviation_pattern(key: str, ignore_case: bool) -> re.Pattern[str]:
    """Match ``key`` as a whole token when it starts / ends with a word character."""
    left = r"(?<!\w)" if re.match(r"\w", key[0]) else ""
    right = r"(?!\w)" if re.match(r"\w", key[-1]) else ""
    return re.compile(left + re.escape(key) + right, re.IGNORECASE if ignore_case else 0)


def expand_abbreviations(text: str, abbreviations: Mapping[str, str], ignore_case: bool) -> str:
    """Replace each abbreviation by its spoken form, longest first (so "tp.hcm" wins over "tp").

    Keys of equal length go in alphabetical order, whatever the order of the config mapping.
    """
    for key in sorted(abbreviations, key=lambda k: (-len(k), k)):
        if not key:
            raise ValueError("asr.normalize.abbreviations: empty key")
        spoken = unicodedata.normalize("NFC", abbreviations[key])
        text = _abbreviation_pattern(unicodedata.normalize("NFC", key), ignore_case).sub(f" {spoken} ", text)
    return text


def strip_punctuation(text: str) -> str:
    """Replace punctuation and symbols by spaces; letters, digits and tone marks stay."""
    return "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)


def normalize_text(text: str, config: NormalizeConfig) -> str:
    """Normalise one transcript: NFC, abbreviations, numbers, case, punctuation, spaces.

    NFC first, so a diacritic typed as a combining mark equals its precomposed letter.
    """
    text = unicodedata.normalize("NFC", text)
    if config.abbreviations:
        text = expand_abbreviations(text, config.abbreviations, ignore_case=config.lowercase)
    if config.numbers_to_words:
        text = _NUMBER.sub(_spell_number, text)
    if config.lowercase:
        text = text.lower()
    if config.remove_punctuation:
        text = strip_punctuation(text)
    return _SPACES.sub(" ", text).strip()


def syllables(normalized: str) -> list[str]:
    """The syllables of a normalised Vietnamese text: its whitespace-separated tokens."""
    return normalized.split()


def syllable_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, Any]:
    """SyER of normalised texts: (substitutions + deletions + insertions) / reference syllables.

    Every reference must have at least one syllable (WER-style: an empty reference is undefined).
    """
    refs = [syllables(r) for r in references]
    if any(not r for r in refs):
        raise ValueError("syllable_error_rate: a reference has no syllable; leave such utterances out")
    # jiwer splits each text on whitespace again: its tokens are exactly these syllables.
    counts = jiwer.process_words([" ".join(r) for r in refs], [" ".join(syllables(h)) for h in hypotheses])
    errors = counts.substitutions + counts.deletions + counts.insertions
    total = sum(len(r) for r in refs)
    return {
        "syer": errors / total,
        "syllables": {
            "reference": total,
            "hits": counts.hits,
            "substitutions": counts.substitutions,
            "deletions": counts.deletions,
            "insertions": counts.insertions,
        },
    }


def score_transcripts(references: Sequence[str], hypotheses: Sequence[str], config: NormalizeConfig) -> dict[str, Any]:
    """WER, CER and SyER (jiwer) after normalising both sides, with the edit counts behind them.

    Utterances whose normalised reference is empty cannot be scored (WER is undefined);
    they are counted in ``n_skipped_empty_reference`` and left out.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"score_transcripts: {len(references)} references but {len(hypotheses)} hypotheses")
    pairs = [
        (normalize_text(r, config), normalize_text(h, config)) for r, h in zip(references, hypotheses, strict=True)
    ]
    kept = [(r, h) for r, h in pairs if r]
    result: dict[str, Any] = {
        "n_utterances": len(pairs),
        "n_scored": len(kept),
        "n_skipped_empty_reference": len(pairs) - len(kept),
    }
    if not kept:
        raise ValueError("score_transcripts: every reference is empty after normalisation; nothing to score")
    refs, hyps = [r for r, _ in kept], [h for _, h in kept]
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    result.update(
        {
            "wer": float(words.wer),
            "cer": float(chars.cer),
            "words": {
                "reference": sum(len(r.split()) for r in refs),
                "hits": words.hits,
                "substitutions": words.substitutions,
                "deletions": words.deletions,
                "insertions": words.insertions,
            },
            "characters": {
                "reference": sum(len(r) for r in refs),
                "hits": chars.hits,
                "substitutions": chars.substitutions,
                "deletions": chars.deletions,
                "insertions": chars.insertions,
            },
            "exact_match": sum(r == h for r, h in kept) / len(kept),
        }
    )
    result.update(syllable_error_rate(refs, hyps))
    return result
