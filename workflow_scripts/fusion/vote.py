"""Fusion variant ``vote``: a majority vote over trained variants (seed paper 003's ensemble; rule evaluate_vote).

Each member (a variant: a classifier variant, a neural head or one of its ablations, e.g. the
same head with another seed) votes for its most probable class; the class with the most votes
wins, a tie goes to the tied class with the highest mean probability over all members, and an
exact tie of those to the first class in ``task.classes`` order. The vote has no parameter: it
reads nothing but the members' saved probabilities (the members were trained on the training
split, stopped or selected on the selection split) and is not tuned on any split; labels serve
only to score it.

Its probabilities (the variant contract) are the vote shares nudged by the tie-break,
(votes + TIE_WEIGHT x mean probability) / (members + TIE_WEIGHT), so their argmax is the vote.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from workflow_scripts.common.files import read_json, write_json
from workflow_scripts.common.labels import encode_labels
from workflow_scripts.common.metrics import METRICS, headline_metrics, metrics_document, split_metrics
from workflow_scripts.common.names import VOTE_VARIANT
from workflow_scripts.common.rule import run_rule
from workflow_scripts.fusion.pooling import align_ids, read_labels, read_probabilities, write_probabilities

log = logging.getLogger(__name__)

TITLE = "Majority vote (seed 003)"
# Weight of the mean probability in the shares: below one vote, so it only breaks ties
# (a mean probability difference is below 1).
TIE_WEIGHT = 0.5


def majority_vote(probabilities: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The vote of members' (n, classes) probabilities: predicted classes, shares and counts of ties / unanimity."""
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in probabilities])  # (members, n, classes)
    if stacked.ndim != 3 or len(stacked) == 0:
        raise ValueError(f"a vote needs members' (n, classes) probabilities, got shape {stacked.shape}")
    members, _, n_classes = stacked.shape
    votes = np.stack([np.bincount(row, minlength=n_classes) for row in stacked.argmax(axis=2).T])  # (n, classes)
    mean = stacked.mean(axis=0)
    shares = (votes + TIE_WEIGHT * mean) / (members + TIE_WEIGHT * mean.sum(axis=1, keepdims=True))
    top = votes.max(axis=1)
    figures = {
        "ties": int(((votes == top[:, None]).sum(axis=1) > 1).sum()),
        "unanimous": int((top == members).sum()),
    }
    return shares.argmax(axis=1), shares, figures


def evaluate_vote(
    members: Mapping[str, Mapping[str, tuple[list[str], np.ndarray]]],
    member_documents: Mapping[str, Mapping[str, Any]],
    labels: Mapping[str, tuple[list[str], list[str]]],
    classes: Sequence[str],
    bootstrap: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The vote's metrics document and its probabilities per split.

    ``members``: variant -> split -> (utt_ids, probabilities), joined to ``labels`` (split ->
    (utt_ids, label names)) by utt_id; ``member_documents``: the members' metrics documents.
    """
    if len(members) < 2:
        raise ValueError(f"config fusion.vote.members: a vote needs at least 2 members, got {list(members)}")
    splits, result, agreement = {}, {}, {}
    for split, (utt_ids, names) in labels.items():
        aligned = []
        for variant, per_split in members.items():
            ids, probabilities = per_split[split]
            order = align_ids(utt_ids, ids, f"the manifest of {split}", f"{variant}'s probabilities of {split}")
            aligned.append(probabilities[order])
        predicted, shares, agreement[split] = majority_vote(aligned)
        result[split] = shares
        y = encode_labels(names, classes, f"labels of {split}", utt_ids)
        splits[split] = split_metrics(y, predicted, classes, bootstrap)
    document = metrics_document(
        VOTE_VARIANT,
        TITLE,
        "vote",
        sorted({f for d in member_documents.values() for f in d["feature_sets"]}),
        classes,
        f"majority of {len(members)}",
        splits,
        bootstrap,
        selection=None,
        late_weights=None,
        ensemble=None,
        vote={
            "members": list(members),
            "rule": "majority of the members' argmax; ties -> highest mean probability, then class order",
            "tuned_on": None,
            "agreement": agreement,
        },
        per_classifier={
            variant: {split: headline_metrics(metrics) for split, metrics in document["splits"].items()}
            for variant, document in member_documents.items()
        },
        # A lexicon-rules member (``<variant>+rules``) has no features of its own.
        features={variant: document.get("features") for variant, document in member_documents.items()},
    )
    return document, result


def main(job: Any) -> None:
    """Entry point of the evaluate_vote rule (``job``: the rule's ``snakemake`` object).

    ``input.probabilities``: one file per member and split (members in ``params.members`` order,
    ``params.splits`` within); ``input.metrics``: one per member; ``input.manifests``: one per split.
    """
    members, splits, classes = list(job.params.members), list(job.params.splits), list(job.params.classes)
    files = list(job.input.probabilities)
    if len(files) != len(members) * len(splits) or len(job.input.metrics) != len(members):
        raise ValueError(
            f"evaluate_vote: {len(files)} probability files and {len(job.input.metrics)} metrics files "
            f"for {len(members)} members x {len(splits)} splits"
        )
    labels = {split: read_labels(path, classes) for split, path in zip(splits, job.input.manifests, strict=True)}
    probabilities = {
        member: {split: read_probabilities(files[i * len(splits) + j], classes) for j, split in enumerate(splits)}
        for i, member in enumerate(members)
    }
    documents = {member: read_json(path) for member, path in zip(members, job.input.metrics, strict=True)}
    document, result = evaluate_vote(probabilities, documents, labels, classes, job.params.bootstrap)
    for split, path in zip(splits, job.output.probabilities, strict=True):
        write_probabilities(path, labels[split][0], result[split], classes)
    write_json(job.output.metrics, document)
    for split, metrics in document["splits"].items():
        log.info("vote %s: %s", split, {name: round(metrics[name], 4) for name in METRICS})


if __name__ == "__main__":
    run_rule(main)
