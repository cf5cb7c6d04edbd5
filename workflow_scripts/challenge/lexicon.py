"""Lexicon cue rules after a variant's prediction: the ``<variant>+rules`` rows (VLSP 2025 practice).

The challenge's third-placed team raised SER accuracy with rules on the transcripts: Vietnamese
cue words associated with anger ("tao", "mày") reassign the label the SER model gave. Here a
lexicon file maps phrases to task classes; an utterance whose transcript contains a phrase,
matched on syllable boundaries, gets that phrase's class, whatever the variant predicted. The
first matching phrase of the file wins (the file's order is the rules' priority). Nothing is
fitted: the rules are the same for every split.

Matching: the transcript and each phrase are folded the same way (Unicode NFC, punctuation and
symbols to spaces, lower case when ``ignore_case``, tone marks and other diacritics removed and
"đ" read as "d" when ``ignore_diacritics``) and split into syllables (whitespace tokens); a
phrase matches where its syllables occur contiguously in the transcript's. "mày" then matches
"Mày!" but never "mấy" (unless diacritics are ignored) nor the inside of another syllable.

Lexicon file (TSV, UTF-8, header ``phrase<TAB>class``, optional further columns such as
``note``; blank lines and lines starting with ``#`` are skipped).
"""

import logging
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workflow_scripts.asr.text import strip_punctuation
from workflow_scripts.asr.transcripts import read_transcripts
from workflow_scripts.common.files import atomic_path, read_json, write_json
from workflow_scripts.common.labels import encode_labels
from workflow_scripts.common.manifest import read_manifest
from workflow_scripts.common.metrics import (
    headline_metrics,
    metrics_document,
    paired_bootstrap_difference,
    split_metrics,
)
from workflow_scripts.common.names import RULES_SUFFIX
from workflow_scripts.common.rule import run_rule
from workflow_scripts.fusion.pooling import align_ids, read_probabilities, write_probabilities

log = logging.getLogger(__name__)

LEXICON_COLUMNS = ("phrase", "class")


@dataclass(frozen=True)
class CueRule:
    """One lexicon entry: its phrase as written, its class, and the folded syllables matched."""

    phrase: str
    label: str
    syllables: tuple[str, ...]
    line: int


def fold(text: str, ignore_case: bool, ignore_diacritics: bool) -> list[str]:
    """The syllables of ``text`` as the rules compare them (see the module docstring)."""
    text = strip_punctuation(unicodedata.normalize("NFC", text))
    if ignore_case:
        text = text.lower()
    if ignore_diacritics:
        text = text.replace("đ", "d").replace("Đ", "D")
        text = "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")
        text = unicodedata.normalize("NFC", text)
    return text.split()


def read_lexicon(path: str | Path, classes: Sequence[str], match: Mapping[str, Any]) -> list[CueRule]:
    """The rules of a lexicon file, in file order; errors name the file, line and what was expected."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: lexicon not found (challenge.rules.lexicon)")
    lines = path.read_text(encoding="utf-8").splitlines()
    content = [
        (number, line) for number, line in enumerate(lines, start=1) if line.strip() and not line.startswith("#")
    ]
    if not content:
        raise ValueError(f"{path}: the lexicon is empty (expected a header {'<TAB>'.join(LEXICON_COLUMNS)})")
    header_line, header = content[0]
    columns = header.split("\t")
    if list(columns[:2]) != list(LEXICON_COLUMNS):
        raise ValueError(
            f"{path}, line {header_line}: header {columns} must start with {list(LEXICON_COLUMNS)} (tab-separated)"
        )
    rules: list[CueRule] = []
    seen: dict[tuple[str, ...], CueRule] = {}
    for number, line in content[1:]:
        cells = line.split("\t")
        if len(cells) < 2:
            raise ValueError(f"{path}, line {number}: expected a phrase and a class separated by a tab, got {line!r}")
        phrase, label = cells[0].strip(), cells[1].strip()
        if label not in classes:
            raise ValueError(
                f"{path}, line {number}: class {label!r} of {phrase!r} is not a task class {list(classes)}"
            )
        syllables = tuple(fold(phrase, bool(match["ignore_case"]), bool(match["ignore_diacritics"])))
        if not syllables:
            raise ValueError(f"{path}, line {number}: phrase {phrase!r} has no syllable after folding")
        if syllables in seen:
            earlier = seen[syllables]
            raise ValueError(
                f"{path}, line {number}: phrase {phrase!r} folds to the same syllables as {earlier.phrase!r} "
                f"(line {earlier.line}); keep one"
            )
        rule = CueRule(phrase, label, syllables, number)
        seen[syllables] = rule
        rules.append(rule)
    if not rules:
        raise ValueError(f"{path}: the lexicon has a header but no phrase")
    return rules


def first_match(syllables: Sequence[str], rules: Sequence[CueRule]) -> int | None:
    """Index of the first rule whose syllables occur contiguously in ``syllables`` (None: no rule)."""
    for index, rule in enumerate(rules):
        width = len(rule.syllables)
        if any(
            tuple(syllables[start : start + width]) == rule.syllables for start in range(len(syllables) - width + 1)
        ):
            return index
    return None


def apply_rules(
    texts: Sequence[str],
    predicted: np.ndarray,
    rules: Sequence[CueRule],
    classes: Sequence[str],
    match: Mapping[str, Any],
) -> tuple[np.ndarray, list[int | None]]:
    """The labels after the rules (class indices) and the rule that fired on each utterance (None: none)."""
    after = np.array(predicted, dtype=np.int64, copy=True)
    fired: list[int | None] = []
    for row, text in enumerate(texts):
        index = first_match(fold(text, bool(match["ignore_case"]), bool(match["ignore_diacritics"])), rules)
        fired.append(index)
        if index is not None:
            after[row] = classes.index(rules[index].label)
    return after, fired


def rule_effects(
    y: np.ndarray, before: np.ndarray, after: np.ndarray, fired: Sequence[int | None], rules: Sequence[CueRule]
) -> list[dict[str, Any]]:
    """Per rule: utterances it matched, predictions it changed, and of those how many it fixed / broke."""
    rows = []
    for index, rule in enumerate(rules):
        hit = np.array([f == index for f in fired], dtype=bool)
        changed = hit & (before != after)
        rows.append(
            {
                "phrase": rule.phrase,
                "class": rule.label,
                "matched": int(hit.sum()),
                "changed": int(changed.sum()),
                "fixed": int((changed & (after == y)).sum()),
                "broken": int((changed & (before == y)).sum()),
            }
        )
    return rows


def read_texts(source: str, path: str, utt_ids: Sequence[str]) -> list[str]:
    """The transcripts the rules read, in ``utt_ids`` order: ``reference`` reads the manifest's
    text (an oracle ASR), anything else a transcripts parquet's hypotheses."""
    if source == "reference":
        frame = read_manifest(path, columns=["utt_id", "text"])
        column = "text"
    else:
        frame = read_transcripts(path)
        column = "hypothesis"
    ids = frame["utt_id"].astype(str).tolist()
    order = align_ids(utt_ids, ids, "the variant's probabilities", path)
    return frame[column].fillna("").astype(str).to_numpy()[order].tolist()


def evaluate_rules(
    base: Mapping[str, Any],
    probabilities: Mapping[str, tuple[list[str], np.ndarray]],
    labels: Mapping[str, tuple[list[str], list[str]]],
    texts: Mapping[str, list[str]],
    rules: Sequence[CueRule],
    classes: Sequence[str],
    match: Mapping[str, Any],
    bootstrap: Mapping[str, Any],
    provenance: Mapping[str, str],
) -> tuple[dict[str, Any], dict[str, np.ndarray], list[dict[str, Any]]]:
    """The ``<variant>+rules`` metrics document, its probabilities per split and the per-rule table.

    ``base``: the base variant's metrics document; ``probabilities``: split -> (utt_ids, the base
    variant's probabilities); ``labels``: split -> (utt_ids, labels) of the manifest; ``texts``:
    split -> transcripts in probabilities order; ``provenance``: the ``lexicon`` file and the
    ``transcripts`` the rules read, as recorded. A changed prediction's probabilities become
    one-hot on the rule's class.
    """
    splits, effects, table, result = {}, {}, [], {}
    for split, (utt_ids, values) in probabilities.items():
        manifest_ids, split_labels = labels[split]
        order = align_ids(utt_ids, manifest_ids, f"the variant's probabilities of {split}", f"manifest of {split}")
        y = encode_labels([split_labels[i] for i in order], classes, f"labels of {split}", utt_ids)
        before = values.argmax(axis=1)
        after, fired = apply_rules(texts[split], before, rules, classes, match)
        changed = before != after
        output = values.copy()
        output[changed] = np.eye(len(classes))[after[changed]]
        result[split] = output
        splits[split] = split_metrics(y, after, classes, bootstrap)
        per_rule = rule_effects(y, before, after, fired, rules)
        table += [{"split": split, **row} for row in per_rule]
        effects[split] = {
            "utterances": len(utt_ids),
            "matched": int(sum(f is not None for f in fired)),
            "changed": int(changed.sum()),
            "fixed": int((changed & (after == y)).sum()),
            "broken": int((changed & (before == y)).sum()),
            "before": headline_metrics(base["splits"][split]),
            "difference": paired_bootstrap_difference(y, before, after, len(classes), bootstrap),
        }
    document = metrics_document(
        base["variant"] + RULES_SUFFIX,
        f"{base['title']} + lexicon rules",
        "rules",
        base["feature_sets"],
        classes,
        base["selected"],
        splits,
        bootstrap,
        base_variant=base["variant"],
        lexicon_rules={
            "rules": [{"phrase": r.phrase, "class": r.label, "line": r.line} for r in rules],
            "match": dict(match),
            "effects": effects,
            **provenance,
        },
    )
    return document, result, table


def write_changes(path: str, table: Sequence[Mapping[str, Any]]) -> None:
    """The per-rule, per-split table as TSV."""
    with atomic_path(path) as tmp:
        pd.DataFrame(list(table)).to_csv(tmp, sep="\t", index=False)


def main(job: Any) -> None:
    """Entry point of the apply_lexicon_rules rule (``job``: the rule's ``snakemake`` object).

    ``input.probabilities``, ``input.manifests`` and ``input.transcripts`` hold one file per
    split of ``params.splits``, in that order.
    """
    block, classes, splits = job.params.rules, list(job.params.classes), list(job.params.splits)
    match = block["match"]
    rules = read_lexicon(job.input.lexicon, classes, match)
    base = read_json(job.input.metrics)
    probabilities = {
        split: read_probabilities(path, classes) for split, path in zip(splits, job.input.probabilities, strict=True)
    }
    labels = {}
    for split, path in zip(splits, job.input.manifests, strict=True):
        frame = read_manifest(path, columns=["utt_id", "label"])
        labels[split] = (frame["utt_id"].tolist(), frame["label"].tolist())
    source = "reference" if block["transcripts"] == "reference" else "asr"
    texts = {
        split: read_texts(source, path, probabilities[split][0])
        for split, path in zip(splits, job.input.transcripts, strict=True)
    }
    provenance = {"lexicon": str(job.input.lexicon), "transcripts": block["transcripts"]}
    document, result, table = evaluate_rules(
        base, probabilities, labels, texts, rules, classes, match, job.params.bootstrap, provenance
    )
    for split, path in zip(splits, job.output.probabilities, strict=True):
        write_probabilities(path, probabilities[split][0], result[split], classes)
    write_changes(job.output.changes, table)
    write_json(job.output.metrics, document)
    for split, effect in document["lexicon_rules"]["effects"].items():
        log.info(
            "%s %s: %d matched, %d changed (%d fixed, %d broken), WA %+.4f",
            document["variant"],
            split,
            effect["matched"],
            effect["changed"],
            effect["fixed"],
            effect["broken"],
            effect["difference"]["WA"]["difference"],
        )


if __name__ == "__main__":
    run_rule(main)
