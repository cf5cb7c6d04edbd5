"""Shared fixtures: paths, a copy of the workflow to run Snakemake in, small audio writers, and the
expensive fixtures that several test modules read, built once per session (a fixture imported into
two modules would be built once in each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from snakemake_runner import run_snakemake  # noqa: F401 - the tests' one Snakemake runner
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


@pytest.fixture(scope="session")
def stand_in_demo(tmp_path_factory) -> Path:
    """A workflow copy whose whole default DAG looks run (tests/rerun_plans.py): for dry-run plans
    after config edits passed as extra config files (never edit this copy's files)."""
    from rerun_plans import stand_in_run

    directory = copy_workflow(tmp_path_factory.mktemp("stand_in_demo") / "workflow")
    stand_in_run(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, Path, dict, dict]:
    """The xattn head's tiny run (tests/head_fixtures.py): (root, run directory, files, encoder)."""
    from head_fixtures import build_tiny_run

    return build_tiny_run(tmp_path_factory.mktemp("xattn_run"))


@pytest.fixture(scope="session")
def whisper_base_ct2(tmp_path_factory) -> Path:
    """The assembled CTranslate2 Whisper base directory (skips where the weights extra is absent)."""
    from workflow_scripts.common.pretrained import whisper_base_ct2 as assemble

    from weights_fixtures import require_weights

    require_weights()
    return assemble(tmp_path_factory.mktemp("weights_cache"))


@pytest.fixture(scope="session")
def whisper_base_hf(whisper_base_ct2, tmp_path_factory) -> Path:
    """Its transformers conversion (save_pretrained directory with the processor)."""
    from workflow_scripts.asr.convert_ct2 import convert

    return convert(whisper_base_ct2, tmp_path_factory.mktemp("whisper_base") / "model")
