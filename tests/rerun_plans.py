"""What a config edit reruns in the whole default DAG, without running any job.

:func:`stand_in_run` gives a copy of the workflow a finished-looking run: every output of the
DAG exists as an empty file (or directory), and ``snakemake --touch -F`` records each job's
params, code and inputs as a real run would. ``snakemake -n`` with an edited config then plans
exactly what the edit would rerun (Snakemake's params / code / input triggers, and what follows
from updated inputs).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from workflow_scripts.common import paths

# The checkpoint select_tefe's output is read while the DAG is built: a stand-in choice.
STAND_IN_CONTENT = {"results/tefe/selection.json": json.dumps({"selected": "CNN"})}


def snakemake(directory: Path, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(directory))
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    result = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def stand_in_run(directory: Path, *args: str) -> None:
    """Make every output of the DAG (``args``: targets, config files) exist and be up to date."""
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
    snakemake(directory, "--touch", "-F", *args)
    assert "Nothing to be done" in snakemake(directory, "-n", *args)


def planned(directory: Path, *args: str, inputs: bool = False) -> dict[str, list[dict[str, str]]]:
    """rule -> the wildcards of each job ``snakemake -n`` plans (``args``: targets, config files);
    with ``inputs``, each job's input files under the key "input" (comma-joined)."""
    jobs: dict[str, list[dict[str, str]]] = {}
    for block in re.split(r"\n(?=rule \w+:)", snakemake(directory, "-n", *args)):
        head = re.match(r"rule (\w+):", block)
        if not head:
            continue
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        values = dict(item.split("=", 1) for item in wildcards.group(1).split(", ")) if wildcards else {}
        found = re.search(r"^\s+input: (.*)$", block, re.M)
        if inputs:
            values["input"] = found.group(1) if found else ""
        jobs.setdefault(head.group(1), []).append(values)
    return jobs


def job_system(job: dict[str, str]) -> str | None:
    """The ASR system of a planned job: its {system} wildcard, or the system of its {scope} (None: shared)."""
    return job["system"] if "system" in job else paths.scope_system(job["scope"])
