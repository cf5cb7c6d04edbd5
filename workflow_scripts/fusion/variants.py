"""The five fusion variants (the paper's ablation) and their metrics.

* ``acoustic``: the classifiers on the SEFE features alone (Table 2 row "SEFE");
* ``text``: the classifiers on the TEFE features alone (row "TEFE");
* ``early``: each classifier alone on the concatenated features;
* ``late``: each classifier trained per modality, the modalities' probabilities averaged
  (weights in config);
* ``hybrid``: DFAT, early fusion + the Optuna-weighted ensemble of XGBoost, RF and LR.

For the first four, every classifier is reported and the variant's result is the classifier
named in config, or (``best``) the one with the best cross-validated score on the TRAINING
split (out-of-fold probabilities): no test split takes part in the choice. Metrics per split:
WA, UA, WF1, confusion matrix, support and seeded bootstrap confidence intervals (the
evaluate_variant rule).
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workflow_scripts.common.files import read_json, write_json
from workflow_scripts.common.labels import encode_labels
from workflow_scripts.common.metrics import (
    METRICS,
    classification_metrics,
    fold_mean_score,
    headline_metrics,
    metrics_document,
    split_metrics,
)
from workflow_scripts.common.names import (
    CLASSIFIER_VARIANTS,
    CLASSIFIERS,
    ENSEMBLE_MEMBERS,
    VARIANT_FEATURE_SETS,
    is_augmented_copy,
)
from workflow_scripts.common.rule import run_rule
from workflow_scripts.fusion.ensemble import combine
from workflow_scripts.fusion.pooling import (
    AlignmentError,
    align_ids,
    read_labels,
    read_probabilities,
    write_probabilities,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VariantSpec:
    """Which feature sets a variant's classifiers were trained on, and how they are combined."""

    feature_sets: tuple[str, ...]
    fusion: str  # "select" (one classifier), "late" (modalities averaged) or "ensemble" (weighted)
    title: str


# How each variant of names.CLASSIFIER_VARIANTS combines its classifiers, and its Table 2 row title.
COMBINATION = {
    "acoustic": ("select", "SEFE (acoustic only)"),
    "text": ("select", "TEFE (text only)"),
    "early": ("select", "Early fusion"),
    "late": ("late", "Late fusion"),
    "hybrid": ("ensemble", "Hybrid fusion (DFAT)"),
    "acoustic_aug": ("select", "SEFE + emotion-driven augmentation"),
    "acoustic_egemaps": ("select", "eGeMAPS functionals (openSMILE; reference)"),
}
SPECS = {variant: VariantSpec(VARIANT_FEATURE_SETS[variant], *COMBINATION[variant]) for variant in CLASSIFIER_VARIANTS}


@dataclass
class Member:
    """One fitted classifier's probabilities, aligned to the manifests, and its summary."""

    classifier: str
    feature_set: str
    summary: dict[str, Any]
    probabilities: dict[str, np.ndarray]  # split -> (n, K), manifest order
    oof: np.ndarray  # training split, manifest order
    fold: np.ndarray


def load_member(
    summary_path: str,
    probability_paths: Mapping[str, str],
    oof_path: str,
    labels: Mapping[str, tuple[list[str], list[str]]],
    classes: Sequence[str],
    train_split: str,
) -> Member:
    """A classifier's outputs (``probability_paths``: split -> file), joined to the manifests by utt_id."""
    summary = read_json(summary_path)
    probabilities = {}
    for split, (utt_ids, _) in labels.items():
        path = probability_paths[split]
        ids, values = read_probabilities(path, classes)
        kept = [i for i, utt in enumerate(ids) if not is_augmented_copy(utt)]  # scored on real utterances only
        ids, values = [ids[i] for i in kept], values[kept]
        probabilities[split] = values[align_ids(utt_ids, ids, f"manifest of {split}", str(path))]
    frame = pd.read_parquet(oof_path)
    frame = frame[~frame["utt_id"].astype(str).map(is_augmented_copy)]
    order = align_ids(
        labels[train_split][0], frame["utt_id"].astype(str).tolist(), f"manifest of {train_split}", str(oof_path)
    )
    return Member(
        summary["classifier"],
        summary["feature_set"],
        summary,
        probabilities,
        frame.loc[:, list(classes)].to_numpy(dtype=np.float64)[order],
        frame["fold"].to_numpy()[order],
    )


def check_members(variant: str, members: Sequence[Member]) -> dict[tuple[str, str], Member]:
    """The members by (feature set, classifier); exactly the variant's feature sets and all classifiers."""
    spec = SPECS[variant]
    by_key = {(m.feature_set, m.classifier): m for m in members}
    expected = {(fs, c) for fs in spec.feature_sets for c in CLASSIFIERS}
    if set(by_key) != expected or len(by_key) != len(members):
        raise ValueError(
            f"variant {variant} needs the classifiers {sorted(expected)}, got "
            f"{sorted((m.feature_set, m.classifier) for m in members)}"
        )
    return by_key


def candidates(
    variant: str,
    members: Mapping[tuple[str, str], Member],
    config: Mapping[str, Any],
    weights: Mapping[str, float] | None,
) -> dict[str, dict[str, Any]]:
    """The variant's candidate predictors: name -> probabilities per split, OOF and folds (when known)."""
    spec = SPECS[variant]
    if spec.fusion == "select":
        (feature_set,) = spec.feature_sets
        return {
            c: {
                "probabilities": members[(feature_set, c)].probabilities,
                "oof": members[(feature_set, c)].oof,
                "fold": members[(feature_set, c)].fold,
            }
            for c in CLASSIFIERS
        }
    if spec.fusion == "late":
        raw = {m: float(config["late_weights"][m]) for m in spec.feature_sets}
        total = sum(raw.values())
        if total <= 0:
            raise ValueError(f"variants.late_weights {raw} must have a positive sum")
        share = {m: w / total for m, w in raw.items()}
        result = {}
        for c in CLASSIFIERS:
            parts = [members[(m, c)] for m in spec.feature_sets]
            if any(not np.array_equal(parts[0].fold, p.fold) for p in parts[1:]):
                raise AlignmentError(
                    f"late fusion of {c}: the modalities' out-of-fold probabilities come from "
                    "different CV folds (were the classifiers trained with different fusion.cv?)"
                )
            splits = parts[0].probabilities
            result[c] = {
                "probabilities": {s: sum(share[p.feature_set] * p.probabilities[s] for p in parts) for s in splits},
                "oof": sum(share[p.feature_set] * p.oof for p in parts),
                "fold": parts[0].fold,
            }
        return result
    if weights is None:
        raise ValueError("the hybrid variant needs the ensemble weights")
    (feature_set,) = spec.feature_sets
    splits = members[(feature_set, ENSEMBLE_MEMBERS[0])].probabilities
    return {
        "ensemble": {
            "probabilities": {
                s: combine({c: members[(feature_set, c)].probabilities[s] for c in ENSEMBLE_MEMBERS}, weights)
                for s in splits
            }
        }
    }


def select(
    variant: str, found: Mapping[str, Mapping[str, Any]], y_train: np.ndarray, config: Mapping[str, Any]
) -> tuple[str, dict[str, float]]:
    """The candidate that gives the variant's result, and every candidate's CV score on the training split."""
    if SPECS[variant].fusion == "ensemble":
        return "ensemble", {}
    metric = config["selection_metric"]
    scores = {name: fold_mean_score(metric, y_train, c["oof"], c["fold"]) for name, c in found.items()}
    choice = config["classifier"]
    if choice == "best":
        # Ties go to the first in CLASSIFIERS order, so the choice is deterministic.
        return max(scores, key=lambda name: (scores[name], -CLASSIFIERS.index(name))), scores
    if choice not in found:
        raise ValueError(f"variants.classifier {choice!r} is not one of {sorted(found)}")
    return choice, scores


def evaluate(
    variant: str,
    members: Sequence[Member],
    labels: Mapping[str, tuple[list[str], list[str]]],
    classes: Sequence[str],
    config: Mapping[str, Any],
    bootstrap: Mapping[str, Any],
    weights_payload: Mapping[str, Any] | None,
    train_split: str,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The variant's metrics document and its probabilities per split."""
    by_key = check_members(variant, members)
    y = {
        split: encode_labels(split_labels, classes, f"labels of {split}", utt_ids)
        for split, (utt_ids, split_labels) in labels.items()
    }
    weights = weights_payload["weights"] if weights_payload else None
    found = candidates(variant, by_key, config, weights)
    chosen, scores = select(variant, found, y[train_split], config)
    result = found[chosen]["probabilities"]
    splits = {split: split_metrics(y[split], result[split].argmax(axis=1), classes, bootstrap) for split in labels}
    scored = {name: c["probabilities"] for name, c in found.items()}
    spec = SPECS[variant]
    if spec.fusion == "ensemble":
        (feature_set,) = spec.feature_sets
        scored |= {c: by_key[(feature_set, c)].probabilities for c in ENSEMBLE_MEMBERS}
    per_classifier = {
        name: {
            split: headline_metrics(classification_metrics(y[split], probabilities[split].argmax(axis=1), classes))
            for split in labels
        }
        for name, probabilities in scored.items()
    }
    document = metrics_document(
        variant,
        spec.title,
        spec.fusion,
        spec.feature_sets,
        classes,
        chosen,
        splits,
        bootstrap,
        selection=(
            {
                "metric": config["selection_metric"],
                "rule": config["classifier"],
                "data": train_split,
                "cv_scores": scores,
            }
            if scores
            else None
        ),
        late_weights=dict(config["late_weights"]) if spec.fusion == "late" else None,
        ensemble=(
            {key: weights_payload[key] for key in ("weights", "objective", "trials", "seed", "folds")}
            if weights_payload
            else None
        ),
        per_classifier=per_classifier,
        features={f"{m.feature_set}/{m.classifier}": m.summary["features"] for m in members},
    )
    return document, result


def main(job: Any) -> None:
    """Entry point of the evaluate_variant rule (``job``: the rule's ``snakemake`` object).

    ``input.summaries`` and ``input.oof`` hold one file per classifier run of the variant,
    ``input.probabilities`` one per run and split (runs in that order, ``params.splits`` within).
    """
    variant, classes, splits = job.wildcards.variant, list(job.params.classes), list(job.params.splits)
    summaries, oof, probabilities = list(job.input.summaries), list(job.input.oof), list(job.input.probabilities)
    if len(probabilities) != len(summaries) * len(splits) or len(oof) != len(summaries):
        raise ValueError(
            f"evaluate_variant: {len(summaries)} summaries, {len(oof)} out-of-fold and "
            f"{len(probabilities)} probability files for {len(splits)} splits"
        )
    labels = {split: read_labels(path, classes) for split, path in zip(splits, job.input.manifests, strict=True)}
    members = [
        load_member(
            summary,
            dict(zip(splits, probabilities[i * len(splits) : (i + 1) * len(splits)], strict=True)),
            oof[i],
            labels,
            classes,
            job.params.train_split,
        )
        for i, summary in enumerate(summaries)
    ]
    weights = read_json(job.input.weights) if "weights" in job.input.keys() else None
    document, result = evaluate(
        variant, members, labels, classes, job.params.variants, job.params.bootstrap, weights, job.params.train_split
    )
    for split, path in zip(splits, job.output.probabilities, strict=True):
        write_probabilities(path, labels[split][0], result[split], classes)
    write_json(job.output.metrics, document)
    for split, metrics in document["splits"].items():
        log.info(
            "%s (%s) %s: %s", variant, document["selected"], split, {name: round(metrics[name], 4) for name in METRICS}
        )


if __name__ == "__main__":
    run_rule(main)
