"""Logging set-up shared by every rule (not a code input of any rule: it changes no result)."""

from __future__ import annotations

import logging
import os
import sys

# The terminal's stderr, kept by run_rule before it sends the job's output to the log file.
_screen_fd: int | None = None


def keep_screen() -> None:
    """Remember the current stderr as the screen (call before redirecting stderr to a log file)."""
    global _screen_fd
    if _screen_fd is None:
        _screen_fd = os.dup(2)


def warn_on_screen(logger: logging.Logger, message: str) -> None:
    """Log ``message`` as a warning and, inside a rule, print it on the screen too (not only in the log)."""
    logger.warning(message)
    if _screen_fd is not None:
        os.write(_screen_fd, f"WARNING: {message}\n".encode())


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr (the rule's log file under ``run_rule``) with timestamps."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
