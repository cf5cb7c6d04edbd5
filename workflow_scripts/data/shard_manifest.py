"""Rule shard_manifest (config ``scale.shards`` > 1): one split's manifest -> its shard manifests.

The shards are :func:`workflow_scripts.common.shards.write_shard_manifests`'s: by a stable hash of
utt_id, rows in manifest order, none empty.
"""

import logging
from typing import Any

from workflow_scripts.common.rule import run_rule
from workflow_scripts.common.shards import write_shard_manifests

log = logging.getLogger(__name__)


def main(job: Any) -> None:
    """Entry point of the shard_manifest rule (``job``: the rule's ``snakemake`` object)."""
    sizes = write_shard_manifests(job.input.manifest, list(job.output.shards))
    log.info("%s: %d shards of %s utterances", job.input.manifest, len(sizes), sizes)


if __name__ == "__main__":
    run_rule(main)
