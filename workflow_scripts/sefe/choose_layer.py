"""The choose_sefe_layer rule: ``layer: auto``'s choice from the training (and selection) split's
all-layer features (:mod:`workflow_scripts.sefe.layer_choice`); no test split is an input."""

import logging
from typing import Any

from workflow_scripts.common.files import write_json
from workflow_scripts.common.rule import run_rule
from workflow_scripts.sefe.evaluate import labelled_features
from workflow_scripts.sefe.layer_choice import choose_layer

log = logging.getLogger(__name__)


def main(job: Any) -> None:
    """Entry point of the choose_sefe_layer rule (``job``: the rule's ``snakemake`` object)."""
    cfg, classes, criterion = job.params.evaluation, job.params.classes, job.params.layer_choice["criterion"]
    statistics = list(cfg["statistics"])
    train = labelled_features(job.input.train_features, job.input.train_manifest, statistics, classes)
    selection = None
    if criterion == "selection":
        selection = labelled_features(job.input.selection_features, job.input.selection_manifest, statistics, classes)
    splits = {"train": job.params.train_split, "selection": job.params.selection_split}
    record = choose_layer(train, selection, cfg, classes, criterion, splits)
    write_json(job.output.choice, record)
    log.info("layer %s chosen by %s on %s: %s", record["layer"], criterion, record["split"], record["scores"])


if __name__ == "__main__":
    run_rule(main)
