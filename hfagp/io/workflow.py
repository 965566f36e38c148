"""Helpers the Snakemake rule files call at parse time (kept out of the .smk files).

Errors found while the workflow is parsed (a missing input file, a bad path in
config.yaml) are raised as Snakemake ``WorkflowError`` carrying the
:class:`HfagpError` message, so Snakemake prints them before any job runs.
"""

from __future__ import annotations

from hfagp.errors import HfagpError
from hfagp.io.paths import resolve_input


def workflow_error(message: str) -> Exception:
    """A Snakemake ``WorkflowError`` (an :class:`HfagpError` outside Snakemake)."""
    try:
        from snakemake.exceptions import WorkflowError
    except ImportError:  # pragma: no cover - snakemake is a dependency
        return HfagpError(message)
    return WorkflowError(message)


def resolve_config_path(value: str, what: str) -> str:
    """Resolve a path from config.yaml (``package:`` allowed) or raise a ``WorkflowError`` naming it."""
    try:
        return str(resolve_input(value, what=what))
    except HfagpError as err:
        raise workflow_error(str(err)) from None
