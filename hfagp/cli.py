"""The ``hfagp`` command line: one sub-command per pipeline stage, grouped by phase.

Each phase package (and each library with commands) has one ``cli.py`` whose
``register(subparsers)`` adds its sub-commands with
``subparsers.add_command(name, help=..., description=...)`` (``add_parser``
with the shared ``--log``/``-v`` options) and sets ``func`` (called with the
parsed namespace). Snakemake rules call exactly these commands, so every
stage also runs by hand.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
import time

from hfagp import __version__
from hfagp.errors import HfagpError
from hfagp.logs import setup_logging

# Modules that contribute sub-commands, imported lazily so that ``hfagp --help``
# stays fast; heavy imports (torch, dlib) happen inside each command.
_COMMAND_MODULES = (
    "hfagp.preprocess.cli",  # frames, landmarks, align, qc, split
    "hfagp.audio.cli",  # audio-extract, audio-features
    "hfagp.expressions.cli",  # expressions
    "hfagp.datasets.cli",  # import, export
    "hfagp.prior.cli",  # select-frames, invert, prior, qc-prior
    "hfagp.avatar.cli",  # train
    "hfagp.evaluate.cli",  # render, render-cross, evaluate, paper-table
    "hfagp.eg3d.cli",  # eg3d-sample, eg3d-snapshot
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every stage's sub-command."""
    parser = argparse.ArgumentParser(
        prog="hfagp",
        description="HFA-GP facial avatar pipeline: each sub-command is one stage.",
    )
    parser.add_argument("--version", action="version", version=f"hfagp {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log", metavar="FILE", help="also append log messages to FILE")
    common.add_argument("-v", "--verbose", action="store_true", help="debug-level logging")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    # Stage modules add their sub-commands with this: shared options, docstring layout kept.
    subparsers.add_command = functools.partial(
        subparsers.add_parser, parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hfagp`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logger = setup_logging(getattr(args, "log", None), getattr(args, "verbose", False))
    started = time.perf_counter()
    try:
        args.func(args)
    except HfagpError as err:
        logger.error("%s", err)
        return 2
    except KeyboardInterrupt:
        logger.error("interrupted; finished artifacts are kept, unfinished ones were not written")
        return 130
    logger.info("hfagp %s finished in %.1f s", args.command, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
