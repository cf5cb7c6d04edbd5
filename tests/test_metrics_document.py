"""The metrics document (metrics/<variant>.json): every kind of variant (classical, head, vote,
lexicon rules) is built by common/metrics.py ``metrics_document`` and valid against
schemas/metrics.schema.yaml, and the schema rejects a document without a key its kind needs."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml
from jsonschema import Draft202012Validator, ValidationError

from workflow_scripts.challenge.lexicon import CueRule, evaluate_rules
from workflow_scripts.common.metrics import (
    DOCUMENT_CORE,
    DOCUMENT_KEYS,
    DOCUMENT_SECTIONS,
    metrics_document,
    split_metrics,
)
from workflow_scripts.common.names import CLASSIFIERS
from workflow_scripts.fusion.heads.outputs import HeadRun
from workflow_scripts.fusion.heads.outputs import metrics_document as head_metrics_document
from workflow_scripts.fusion.variants import Member, evaluate
from workflow_scripts.fusion.vote import evaluate_vote

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[1] / "schemas" / "metrics.schema.yaml").read_text())
CLASSES = ["neutral", "negative", "happy"]
SIZES = {"train": 30, "dev": 12, "test": 15}
BOOTSTRAP = {"resamples": 50, "confidence": 0.9, "seed": 5}
VARIANTS = {"select": "acoustic", "late": "late", "ensemble": "hybrid"}


def _probabilities(rng: np.random.Generator, n: int) -> np.ndarray:
    values = rng.random((n, len(CLASSES))) + 0.1
    return values / values.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def documents() -> dict[str, dict]:
    """One document of each kind, built by the rules' own functions from synthetic predictions."""
    rng = np.random.default_rng(1)
    ids = {s: [f"{s}{i}" for i in range(n)] for s, n in SIZES.items()}
    y = {s: rng.integers(0, len(CLASSES), n) for s, n in SIZES.items()}
    labels = {s: (ids[s], [CLASSES[k] for k in y[s]]) for s in SIZES}

    def member(feature_set: str, classifier: str) -> Member:
        summary = {"classifier": classifier, "feature_set": feature_set, "features": [{"modality": feature_set}]}
        probabilities = {s: _probabilities(rng, n) for s, n in SIZES.items()}
        return Member(classifier, feature_set, summary, probabilities, _probabilities(rng, 30), np.arange(30) % 3)

    config = {"selection_metric": "balanced_accuracy", "classifier": "best", "late_weights": {"acoustic": 1, "text": 2}}
    weights = {
        "weights": {"xgboost": 0.5, "rf": 0.3, "lr": 0.2},
        "objective": {"metric": "balanced_accuracy", "value": 0.5},
        "trials": 4,
        "seed": 1,
        "folds": 3,
    }
    built = {}
    for kind, variant in VARIANTS.items():
        sets = {"acoustic": ["acoustic"], "late": ["acoustic", "text"], "hybrid": ["early"]}[variant]
        members = [member(fs, c) for fs in sets for c in CLASSIFIERS]
        payload = weights if kind == "ensemble" else None
        built[kind], _ = evaluate(variant, members, labels, CLASSES, config, BOOTSTRAP, payload, "train")
    splits = {s: split_metrics(y[s], rng.integers(0, 3, n), CLASSES, BOOTSTRAP) for s, n in SIZES.items()}
    run = HeadRun({}, BOOTSTRAP, CLASSES, "train", "dev", "xattn", "Cross-modal attention")
    report = {"training": {"monitor": "balanced_accuracy"}, "best_epoch": 2}
    built["head"] = head_metrics_document("xattn", run, report, splits, ["acoustic_sequences"], {"acoustic": {}})
    votes = {v: {s: (ids[s], _probabilities(rng, n)) for s, n in SIZES.items()} for v in ("acoustic", "xattn")}
    member_documents = {"acoustic": built["select"], "xattn": built["head"]}
    built["vote"], _ = evaluate_vote(votes, member_documents, labels, CLASSES, BOOTSTRAP)
    rules = [CueRule("khóc", "negative", ("khoc",), 2)]
    texts = {s: ["khóc" if i % 3 == 0 else "ok" for i in range(n)] for s, n in SIZES.items()}
    match = {"ignore_case": True, "ignore_diacritics": True}
    provenance = {"lexicon": "lexicon.tsv", "transcripts": "reference"}
    built["rules"], _, _ = evaluate_rules(
        built["ensemble"], votes["acoustic"], labels, texts, rules, CLASSES, match, BOOTSTRAP, provenance
    )
    return built


def _errors(document: dict) -> list[ValidationError]:
    return list(Draft202012Validator(SCHEMA).iter_errors(document))


def test_the_schema_is_valid_and_lists_the_keys_in_the_builders_order():
    Draft202012Validator.check_schema(SCHEMA)
    assert list(SCHEMA["properties"]) == list(DOCUMENT_KEYS) and SCHEMA["required"] == list(DOCUMENT_CORE)
    assert set(SCHEMA["properties"]["fusion"]["enum"]) == set(DOCUMENT_SECTIONS)


@pytest.mark.parametrize("kind", sorted(DOCUMENT_SECTIONS))
def test_every_kind_is_valid_with_exactly_its_sections(documents, kind):
    document = documents[kind]
    assert document["fusion"] == kind and not _errors(document)
    # the builder's key order, core keys plus the kind's sections
    expected = set(DOCUMENT_CORE) | set(DOCUMENT_SECTIONS[kind])
    assert list(document) == [key for key in DOCUMENT_KEYS if key in expected]


@pytest.mark.parametrize(
    "kind, key",
    [(kind, key) for kind, sections in sorted(DOCUMENT_SECTIONS.items()) for key in (*DOCUMENT_CORE, *sections)],
)
def test_a_missing_key_fails_the_schema(documents, kind, key):
    document = copy.deepcopy(documents[kind])
    del document[key]
    assert _errors(document), f"a {kind} document without {key!r} passed the schema"


@pytest.mark.parametrize(
    "kind, foreign, owner",
    [("head", "vote", "vote"), ("select", "lexicon_rules", "rules"), ("rules", "per_classifier", "select")],
)
def test_another_kinds_section_fails_the_schema(documents, kind, foreign, owner):
    document = copy.deepcopy(documents[kind])
    document[foreign] = copy.deepcopy(documents[owner][foreign])
    assert _errors(document)


def test_a_split_without_its_intervals_fails_the_schema(documents):
    document = copy.deepcopy(documents["select"])
    del document["splits"]["test"]["ci"]
    assert _errors(document)


def test_the_builder_rejects_sections_of_another_kind():
    splits = {"test": split_metrics([0, 1, 1], [0, 1, 0], CLASSES[:2], BOOTSTRAP)}
    with pytest.raises(ValueError, match="sections"):
        metrics_document("x", "X", "head", [], CLASSES[:2], "x", splits, BOOTSTRAP, vote=None)
    with pytest.raises(ValueError, match="unknown fusion"):
        metrics_document("x", "X", "bagging", [], CLASSES[:2], "x", splits, BOOTSTRAP)
