"""The gather rules of sharded steps (``gather_<step>``, config ``scale.shards`` > 1): a split's shard
files -> the split's contract file, as one job over the split writes it
(:func:`workflow_scripts.common.shards.gather_shards`)."""

import logging
from typing import Any

from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.shards import gather_shards

log = logging.getLogger(__name__)


def main(job: Any) -> None:
    """Entry point of every gather_<step> rule (``job``: the rule's ``snakemake`` object)."""
    rows = gather_shards(list(job.input.shards), job.input.manifest, job.output.gathered)
    log.info("wrote %s: %d rows from %d shards", job.output.gathered, rows, len(job.input.shards))


if __name__ == "__main__":
    run_rule(main)
