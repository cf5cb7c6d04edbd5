"""Text preparation of the text emotion encoder (TEFE): normalisation, tokens, vocabulary, id sequences.

The same preparation must run at training and at feature extraction, so the settings are saved
with the vocabulary (``vocab.json`` beside each model) and extraction reads them from there.

* Normalisation: Unicode NFC, then lowercase (``str.lower`` keeps Vietnamese diacritics:
  "Tức Giận" -> "tức giận"), then NFC again (lowercasing may decompose a few characters).
* Tokens: whitespace-separated syllables (Vietnamese writing separates syllables by spaces) with
  punctuation split off as its own tokens; or pyvi word segmentation (multi-syllable words
  joined by "_"). Punctuation tokens are kept or dropped (``punctuation``): ASR transcripts carry
  little reliable punctuation, so the speech-oriented default drops it.
* Vocabulary: id 0 ``<PAD>``, id 1 ``<UNK>``, then the training tokens seen at least
  ``min_count`` times, most frequent first (ties in order of first appearance), at most
  ``max_vocab`` entries in all when set.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from workflow_scripts.common.files import read_json, write_json

PAD = "<PAD>"
UNK = "<UNK>"
PAD_ID = 0
UNK_ID = 1

TOKENIZERS = ("whitespace", "pyvi")
# A word is letters/digits (plus combining marks a non-NFC input may still hold) and inner
# "_" (pyvi joins syllables with it); anything else that is not a space is one punctuation or
# symbol token (emoji included).
_TOKEN = re.compile(r"[\w\u0300-\u036f]+|[^\w\s]", re.UNICODE)
_WORD = re.compile(r"[\w\u0300-\u036f]", re.UNICODE)

# The keys of tefe.text (schemas/tefe.schema.yaml holds their defaults and descriptions).
TEXT_KEYS = ("lowercase", "tokenizer", "punctuation", "max_length", "min_count", "max_vocab")


def text_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The text settings of a tefe.text block (validated, every key present) or of a saved vocabulary,
    values checked again (a vocabulary's settings come from its file)."""
    unknown = sorted(set(config) - set(TEXT_KEYS))
    if unknown:
        raise ValueError(f"tefe.text: unknown key(s) {unknown}; expected {sorted(TEXT_KEYS)}")
    settings = {key: config[key] for key in TEXT_KEYS}
    if settings["tokenizer"] not in TOKENIZERS:
        raise ValueError(f"tefe.text.tokenizer: {settings['tokenizer']!r}, expected one of {TOKENIZERS}")
    if settings["punctuation"] not in ("keep", "drop"):
        raise ValueError(f"tefe.text.punctuation: {settings['punctuation']!r}, expected 'keep' or 'drop'")
    if int(settings["max_length"]) < 1:
        raise ValueError(f"tefe.text.max_length: {settings['max_length']}, expected >= 1")
    return settings


def normalize_text(text: str, lowercase: bool = True) -> str:
    """NFC, optional lowercase (diacritics kept), whitespace collapsed and stripped."""
    text = unicodedata.normalize("NFC", text)
    if lowercase:
        text = unicodedata.normalize("NFC", text.lower())
    return " ".join(text.split())


@lru_cache(maxsize=1)
def _pyvi_tokenizer():
    try:
        from pyvi import ViTokenizer
    except ImportError as error:  # pinned in pyproject.toml; only a broken install lands here
        raise ImportError("tefe.text.tokenizer 'pyvi' needs the pyvi package (pip install pyvi==0.1.1)") from error
    return ViTokenizer


def tokenize(text: str, settings: Mapping[str, Any]) -> list[str]:
    """Tokens of one text after normalisation, as configured (see the module docstring)."""
    text = normalize_text(text, settings["lowercase"])
    if settings["tokenizer"] == "pyvi" and text:
        text = _pyvi_tokenizer().tokenize(text)
    tokens = _TOKEN.findall(text)
    if settings["punctuation"] == "drop":
        tokens = [t for t in tokens if _WORD.search(t)]
    return tokens


@dataclass
class Vocabulary:
    """Token <-> id mapping plus the text settings it was built with."""

    tokens: list[str]
    settings: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tokens[:2] != [PAD, UNK]:
            raise ValueError(f"vocabulary must start with {PAD!r}, {UNK!r}; starts with {self.tokens[:2]}")
        self.index = {token: i for i, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("vocabulary has duplicate tokens")

    def __len__(self) -> int:
        return len(self.tokens)

    def ids(self, tokens: Iterable[str]) -> list[int]:
        """Ids of tokens; out-of-vocabulary tokens map to ``<UNK>``."""
        return [self.index.get(token, UNK_ID) for token in tokens]

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Texts -> (ids int64 [n, max_length] padded with ``<PAD>``, lengths int64 [n]).

        Longer texts keep their first ``max_length`` tokens. A text with no token at all
        becomes a single ``<UNK>`` (length 1), so that every utterance gets a feature.
        """
        max_length = int(self.settings["max_length"])
        ids = np.full((len(texts), max_length), PAD_ID, dtype=np.int64)
        lengths = np.zeros(len(texts), dtype=np.int64)
        for row, text in enumerate(texts):
            seq = self.ids(tokenize(text, self.settings))[:max_length] or [UNK_ID]
            ids[row, : len(seq)] = seq
            lengths[row] = len(seq)
        return ids, lengths

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary and its text settings as JSON (atomically)."""
        write_json(path, {"settings": self.settings, "tokens": self.tokens, "counts": self.counts})

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`."""
        payload = read_json(path)
        if not isinstance(payload, dict) or not {"settings", "tokens"} <= set(payload):
            raise ValueError(f"{path}: not a TEFE vocabulary (expected keys 'settings' and 'tokens')")
        try:
            return cls(list(payload["tokens"]), text_settings(payload["settings"]), dict(payload.get("counts", {})))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error


def build_vocabulary(texts: Iterable[str], settings: Mapping[str, Any]) -> Vocabulary:
    """The vocabulary of a training corpus (see the module docstring for the order)."""
    settings = text_settings(settings)
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokenize(text, settings))
    # Counter keeps first-appearance order, and sorted() is stable: ties stay in that order.
    ranked = [t for t, c in sorted(counts.items(), key=lambda item: -item[1]) if c >= int(settings["min_count"])]
    ranked = [t for t in ranked if t not in (PAD, UNK)]
    if settings["max_vocab"] is not None:
        ranked = ranked[: max(0, int(settings["max_vocab"]) - 2)]
    if not ranked:
        raise ValueError("the training texts give an empty vocabulary (check tefe.text.min_count and the corpus)")
    return Vocabulary([PAD, UNK, *ranked], settings, {t: counts[t] for t in ranked})
