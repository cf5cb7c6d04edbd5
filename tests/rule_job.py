"""A stand-in for the ``snakemake`` object a rule's script receives, for calling ``main(job)`` in tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from snakemake.iocontainers import InputFiles, Log, OutputFiles, Params, Wildcards

from workflow_scripts.common.keep import flat_paths


def rule_job(
    input: dict[str, Any] | None = None,
    output: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    wildcards: dict[str, str] | None = None,
    threads: int = 1,
    log: list[str] | None = None,
    rule: str = "rule",
) -> Any:
    """An object with the ``input``, ``output``, ``params``, ``wildcards``, ``threads`` and ``log``
    of one job, each a Snakemake named list (attribute and index access) as in a real job, and the
    name of its ``rule``."""

    class Job:
        pass

    job = Job()
    job.input = InputFiles(fromdict=dict(input or {}))
    job.output = OutputFiles(fromdict=dict(output or {}))
    job.params = Params(fromdict=dict(params or {}))
    job.wildcards = Wildcards(fromdict=dict(wildcards or {}))
    job.threads = threads
    job.log = Log(log or [])
    job.rule = rule
    return job


def output_bytes(job: Any) -> dict[str, bytes]:
    """Every file of the job's outputs (directories walked), by path."""
    found = {}
    for output in map(Path, flat_paths(job.output)):
        for file in sorted(output.rglob("*")) if output.is_dir() else [output]:
            if file.is_file():
                found[str(file)] = file.read_bytes()
    return found


def delete_outputs(job: Any) -> None:
    """What Snakemake does to a job's outputs before running it."""
    for output in map(Path, flat_paths(job.output)):
        shutil.rmtree(output) if output.is_dir() else output.unlink(missing_ok=True)
