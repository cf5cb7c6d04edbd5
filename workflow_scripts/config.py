"""The workflow's config check: the schema (common/config_schema.py), then every stage's checks
across keys (<stage>/config_checks.py), so the rules and the config checker accept and refuse
the same configs.

``python -m workflow_scripts.config [FILE ...]`` checks config files before a run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from workflow_scripts.asr.config_checks import check_asr_config
from workflow_scripts.challenge.config_checks import check_challenge_config
from workflow_scripts.common.config_schema import SCHEMA, ConfigError, load_config_file, merge_config, validate_schema
from workflow_scripts.common.device_checks import check_cuda_devices
from workflow_scripts.data.config_checks import check_data_config
from workflow_scripts.fusion.config_checks import check_fusion_config
from workflow_scripts.sefe.config_checks import check_sefe_config
from workflow_scripts.tefe.config_checks import check_tefe_config

# In the order the rules met them before they moved here (data, asr, fusion, challenge), then the
# checks of what a job would otherwise find only when it runs (local models, layers, CUDA devices).
STAGE_CHECKS: tuple[Callable[[Mapping[str, Any]], None], ...] = (
    check_data_config,
    check_asr_config,
    check_fusion_config,
    check_challenge_config,
    check_sefe_config,
    check_tefe_config,
    check_cuda_devices,
)


def validate_config(config: dict[str, Any], schema_path: str | Path = SCHEMA) -> dict[str, Any]:
    """Validate ``config`` in place against the schema (defaults filled in) and every stage's checks; return it.

    Raises :class:`ConfigError` naming the key path and what was expected.
    """
    validate_schema(config, schema_path)
    try:
        for check in STAGE_CHECKS:
            check(config)
    except ValueError as error:  # the checks' own type: one error type for every caller
        raise ConfigError(str(error)) from None
    return config


def main(argv: list[str] | None = None) -> None:
    """Check config files before a run: ``python -m workflow_scripts.config [FILE ...]``.

    Loads config.yaml and then each FILE over it (as ``snakemake --configfile FILE`` does),
    naming the file and line of a YAML error, and validates the result as the rules do.
    """
    files = [SCHEMA.parents[1] / "config.yaml", *(argv if argv is not None else sys.argv[1:])]
    config: dict[str, Any] = {}
    try:
        for path in files:
            config = merge_config(config, load_config_file(path))
        validate_config(config)
    except ConfigError as error:
        raise SystemExit(str(error)) from None
    print(f"config OK: {', '.join(map(str, files))}")


if __name__ == "__main__":
    main()
