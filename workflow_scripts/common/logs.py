"""Logging set-up shared by every rule (not a code input of any rule: it changes no result)."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr (the rule's log file under ``run_rule``) with timestamps."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
