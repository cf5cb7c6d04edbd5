"""The one entry-point convention of the workflow: Snakemake's ``script:`` directive.

Every rule runs a module of this package as its script. The module ends with::

    if __name__ == "__main__":
        run_rule(main)

and ``main(job)`` reads every path it touches from ``job.input`` / ``job.output``, its config
block from ``job.params``, and its thread count from ``job.threads`` (``job`` is the
``snakemake`` object Snakemake injects; tests pass an equivalent built by
``tests/rule_job.py``). Config blocks therefore travel as Python objects, not as JSON on a
command line, and still rerun the rule when they change (they are rule params).

An expensive step ends with ``run_rule(main, keep=True)`` instead: its finished outputs are kept
by fingerprint and restored by a rerun that matches (common/keep.py; config key ``keep``).

Snakemake prepends a preamble to the script, so a script module may not use
``from __future__ import annotations`` (Python 3.11 needs none).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from workflow_scripts.common.keep import run_kept
from workflow_scripts.common.logs import keep_screen, setup_logging


def _redirect_to_log(path: str) -> None:
    """Send this process's stdout and stderr (C libraries included) to the rule's log file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)


def run_rule(main: Callable[[Any], None], keep: bool = False) -> None:
    """Run ``main`` on the ``snakemake`` object of the calling ``script:``, logging to its log file.

    ``keep``: an expensive step, whose outputs are kept and restored by fingerprint (common/keep.py)
    unless the config's ``keep`` is false.
    """
    job = vars(sys.modules["__main__"]).get("snakemake")
    if job is None:
        raise SystemExit(
            f"{sys.argv[0]} is a Snakemake script: run it through its rule (snakemake <target>), "
            "or call its functions from Python"
        )
    if len(job.log) > 0:
        keep_screen()  # warn_on_screen still reaches the terminal
        _redirect_to_log(str(job.log[0]))
    setup_logging()
    if keep and job.config["keep"]:
        run_kept(main, job)
    else:
        main(job)
