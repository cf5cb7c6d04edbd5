"""Copies of the workflow, and the params Snakemake recorded in one (tests and benchmarks)."""

from __future__ import annotations

import json
import shutil
from base64 import urlsafe_b64encode
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# What a run of the workflow needs from the checkout (no results, no tests).
WORKFLOW_FILES = [
    "Snakefile",
    "config.yaml",
    "rules",
    "schemas",
    "workflow_scripts",
    "profiles",
    "report",
    "envs",
    "configs",
]


def copy_workflow(target: Path) -> Path:
    """Copy the workflow's code and config (no results) into a new directory ``target``."""
    target.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, target / name)
    return target


def recorded_params(directory: Path, outputs: list[str]) -> dict[str, list[str] | None]:
    """The params Snakemake recorded for each of ``outputs`` in ``directory`` (None: no record).

    What its params rerun trigger compares: a job reruns when its params differ from the record.
    ``snakemake --touch -F <targets>`` records them for every job of a workflow copy without
    running one (script: rules print no command to compare). Records live in
    .snakemake/metadata under the url-safe base64 of the path (short paths: one file name).
    """
    records = {}
    for output in outputs:
        path = directory / ".snakemake" / "metadata" / urlsafe_b64encode(output.encode()).decode()
        records[output] = json.loads(path.read_text())["params"] if path.exists() else None
    return records
