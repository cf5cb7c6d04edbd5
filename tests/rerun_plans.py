"""What a config edit reruns in the whole default DAG, without running any job.

:func:`stand_in_run` gives a copy of the workflow a finished-looking run: every output of the
DAG exists as an empty file (or directory), and ``snakemake --touch -F`` records each job's
params, code and inputs as a real run would. ``snakemake -n`` with an edited config then plans
exactly what the edit would rerun (Snakemake's params / code / input triggers, and what follows
from updated inputs).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from workflow_scripts.common import paths

from snakemake_runner import dry_run, run_snakemake

# The checkpoint select_tefe's output is read while the DAG is built: a stand-in choice.
STAND_IN_CONTENT = {"results/tefe/selection.json": json.dumps({"selected": "CNN"})}


def snakemake(directory: Path, *args: str) -> str:
    """Snakemake's output (stdout and stderr) in ``directory``; fails the test if it fails."""
    result = run_snakemake(directory, *args, timeout=300)
    return result.stdout + result.stderr


def stand_in_run(directory: Path, *args: str, force: bool = True) -> None:
    """Make every output of the DAG (``args``: targets, config files) exist and be up to date.

    Without ``force``, only the jobs Snakemake would run are touched: in a copy of a stand-in run,
    what ``args`` add or change (the other jobs' records stay those of the copied run).
    """
    for path, content in STAND_IN_CONTENT.items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_text(content)
    summary = snakemake(directory, "--summary", *args)
    for line in summary.splitlines():
        name = line.split("\t")[0]
        if not name.startswith("results/"):
            continue
        path = directory / name
        if path.exists():
            continue
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:  # directory() outputs (models, wav folders) have no suffix
            path.mkdir(parents=True, exist_ok=True)
    snakemake(directory, "--touch", *(["-F"] if force else []), *args)
    assert "Nothing to be done" in snakemake(directory, "-n", *args)


def copy_stand_in(source: Path, target: Path) -> Path:
    """A copy of the stand-in run ``source`` (outputs, times and Snakemake's records) at ``target``."""
    shutil.copytree(source, target, symlinks=True)
    return target


def planned(directory: Path, *args: str, inputs: bool = False) -> dict[str, list[dict[str, str]]]:
    """rule -> the wildcards of each job ``snakemake -n`` plans (``args``: targets, config files);
    with ``inputs``, each job's input files under the key "input" (comma-joined)."""
    return {
        rule: [{**job.wildcards, **({"input": ", ".join(job.input)} if inputs else {})} for job in jobs]
        for rule, jobs in dry_run(directory, *args, timeout=300).by_rule().items()
    }


def job_system(job: dict[str, str]) -> str | None:
    """The ASR system of a planned job: its {system} wildcard, or the system of its {scope} (None: shared)."""
    return job["system"] if "system" in job else paths.scope_system(job["scope"])
