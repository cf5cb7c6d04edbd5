"""Shared fixtures: paths, a copy of the workflow to run Snakemake in, small audio writers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from workflow_copy import copy_workflow

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with a message when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real corpus {path} is absent (../shared/data is not beside this checkout)")
    return path


def write_tone(
    path: Path,
    seconds: float = 1.0,
    sample_rate: int = 16000,
    amplitude: float = 0.5,
    channels: int = 1,
    frequency: float = 220.0,
    subtype: str = "PCM_16",
) -> Path:
    """Write a sine tone (a valid, non-silent file)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sample_rate, subtype=subtype)
    return path


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    """A private copy of the workflow (code and config, no results) to run Snakemake in."""
    return copy_workflow(tmp_path / "workflow")


def run_snakemake(directory: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run Snakemake in ``directory`` with this interpreter's environment."""
    env = dict(os.environ, PYTHONPATH=str(directory))
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    result = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result
