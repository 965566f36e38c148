"""Logging set-up shared by every ``hfagp`` command.

Messages go to stderr and, when the command was given ``--log FILE`` (every
Snakemake rule does), also to that file, so each rule has its own log.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

LOGGER_NAME = "hfagp"


def setup_logging(log_file: str | Path | None = None, verbose: bool = False) -> logging.Logger:
    """Configure the ``hfagp`` logger for a command run and return it."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    logger.addHandler(console)
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger


def get_logger(name: str) -> logging.Logger:
    """Return a child of the ``hfagp`` logger (``hfagp.<name>``)."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}")
