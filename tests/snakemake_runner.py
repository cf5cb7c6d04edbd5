"""The one way tests (and benchmarks) run Snakemake, and the one reader of what a run plans.

:func:`run_snakemake` runs Snakemake on a copy of the workflow in a subprocess with this
interpreter; :func:`start_snakemake` starts one to kill it; :func:`parse_plan` reads the jobs
that Snakemake prints (a dry run's plan, or the log of a real run); :func:`dry_run` is both.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# "rule x:" (or "checkpoint x:", "localrule x:") followed by the job's indented fields.
_JOB = re.compile(r"^(?:rule|localrule|checkpoint) (\w+):\n((?:    .*\n?)+)", re.M)
_FIELD = re.compile(r"^    (\w+): (.*)$", re.M)
_COUNT = re.compile(r"^(\S+)\s+(\d+)$")
# How much of a failed run's output a test failure shows.
TAIL = 4000


def snakemake_command(*args: str, cores: int | None = 2) -> list[str]:
    """``python -m snakemake`` with this interpreter (``cores`` None: the profile's or executor's)."""
    return [sys.executable, "-m", "snakemake", *(["--cores", str(cores)] if cores else []), *args]


def snakemake_env(directory: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment, with the workflow copy's own code first on the import path."""
    return dict(os.environ, PYTHONPATH=str(directory), **(extra or {}))


def run_snakemake(
    directory: Path,
    *args: str,
    check: bool = True,
    timeout: int = 900,
    cores: int | None = 2,
    env: Mapping[str, str] | None = None,
    merge_output: bool = False,
    **options: Any,
) -> subprocess.CompletedProcess:
    """Run Snakemake in ``directory``; fail the test (with the output's tail) when it fails
    (``check``) or runs longer than ``timeout`` seconds (then it is killed).

    ``env``: variables added to the environment; ``merge_output``: stderr into stdout, in the
    order written (one log); ``options``: more arguments of :func:`subprocess.run`.
    """
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT} if merge_output else {"capture_output": True}
    try:
        result = subprocess.run(
            snakemake_command(*args, cores=cores),
            cwd=directory,
            env=snakemake_env(directory, env),
            text=True,
            timeout=timeout,
            **streams,
            **options,
        )
    except subprocess.TimeoutExpired as error:
        output = error.stdout.decode(errors="replace") if isinstance(error.stdout, bytes) else error.stdout or ""
        raise AssertionError(f"snakemake {' '.join(args)} killed after {timeout} s:\n{output[-TAIL:]}") from None
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{result.stdout[-TAIL:]}\n{(result.stderr or '')[-TAIL:]}"
        )
    return result


def start_snakemake(directory: Path, *args: str, log: IO[str]) -> subprocess.Popen:
    """Start Snakemake in ``directory`` in a new session (kill it with ``os.killpg``), its output to ``log``."""
    return subprocess.Popen(
        snakemake_command(*args),
        cwd=directory,
        env=snakemake_env(directory),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@dataclass(frozen=True)
class Job:
    """One job as Snakemake prints it: its rule and fields (lists split at ", ", absent: empty)."""

    rule: str
    wildcards: dict[str, str] = field(default_factory=dict)
    input: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    resources: dict[str, str] = field(default_factory=dict)
    jobid: str = ""


@dataclass(frozen=True)
class Plan:
    """The jobs Snakemake printed, in order, and its "Job stats" table (rule -> jobs; {}: nothing to do)."""

    jobs: list[Job]
    counts: dict[str, int]

    def by_rule(self) -> dict[str, list[Job]]:
        """rule -> its jobs, rules in the order of their first job."""
        found: dict[str, list[Job]] = {}
        for job in self.jobs:
            found.setdefault(job.rule, []).append(job)
        return found


def _pairs(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(", ") if "=" in item)


def _job_counts(output: str) -> dict[str, int]:
    """Jobs per rule from the "Job stats" table ({} when there is none: nothing to do).

    >>> _job_counts("Job stats:\\njob  count\\n---  -----\\ntrain_classifier  2\\nall  1\\ntotal  3\\n")
    {'train_classifier': 2, 'all': 1}
    """
    if "Job stats:" not in output:
        return {}
    counts: dict[str, int] = {}
    for line in output.split("Job stats:", 1)[1].splitlines()[3:]:
        match = _COUNT.match(line.strip())
        if not match:
            break
        if match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def parse_plan(output: str) -> Plan:
    """The jobs and job counts in Snakemake's output (a dry run, or the log of a run)."""
    jobs = []
    for block in _JOB.finditer(output):
        fields = dict(_FIELD.findall(block.group(2)))
        jobs.append(
            Job(
                rule=block.group(1),
                wildcards=_pairs(fields.get("wildcards", "")),
                input=fields["input"].split(", ") if "input" in fields else [],
                output=fields["output"].split(", ") if "output" in fields else [],
                resources=_pairs(fields.get("resources", "")),
                jobid=fields.get("jobid", ""),
            )
        )
    return Plan(jobs, _job_counts(output))


def dry_run(directory: Path, *args: str, **options: Any) -> Plan:
    """What ``snakemake -n *args`` plans in ``directory`` (``options``: as :func:`run_snakemake`)."""
    result = run_snakemake(directory, "-n", *args, **options)
    return parse_plan(result.stdout + (result.stderr or ""))
