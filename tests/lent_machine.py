"""Emulate the lent GPU machine's Python in a child process: only its packages can be imported.

That machine's python3 has torch and numpy, scipy, pandas, pyarrow, opencv-python-headless, scikit-image,
pillow, tqdm, pyyaml, tensorboard and pytest (with what they require), and nothing else of this project's
environment: no dlib, snakemake, PyAV, lpips, jsonschema, and no installed hfagp. :func:`blocking_site`
writes a ``sitecustomize.py`` that hides every top-level module of this environment whose
distribution is outside that set; put its folder on ``PYTHONPATH`` of the child. (``bench/gpu_check_venv.sh``
does the same with a real fresh venv and torch 2.11.)
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

LENT_MACHINE_DISTRIBUTIONS = ("torch", "numpy", "scipy", "pandas", "pyarrow", "opencv-python-headless",
                              "scikit-image", "pillow", "tqdm", "pyyaml", "tensorboard", "pytest")
# Named by issue 25 as absent there; denied even where the metadata does not map them (dlib's wheel lists only
# its extension module).
NAMED_ABSENT = ("dlib", "snakemake", "av", "lpips", "jsonschema")
# Always importable: the checkout itself (bench/gpu_check.py puts it first on sys.path).
CHECKOUT_MODULES = ("hfagp", "gpu_check", "gpu_steps", "bench_training", "timing")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def allowed_distributions(roots=LENT_MACHINE_DISTRIBUTIONS) -> set[str]:
    """``roots`` and everything they require (extras excluded), as installed here."""
    allowed, todo = set(), [_canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in allowed:
            continue
        allowed.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for requirement in requirements:
            if "extra ==" in requirement or "extra==" in requirement:
                continue
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
            if match:
                todo.append(_canonical(match.group(1)))
    return allowed


def denied_modules() -> set[str]:
    """Top-level modules installed here whose distributions the lent machine does not have."""
    allowed = allowed_distributions()
    denied = set(NAMED_ABSENT)
    for module, dists in metadata.packages_distributions().items():
        if module in CHECKOUT_MODULES or module in sys.stdlib_module_names:
            continue
        if not any(_canonical(d) in allowed for d in dists):
            denied.add(module)
    return denied


SITECUSTOMIZE = '''\
import sys
from importlib.machinery import PathFinder

DENIED = frozenset({denied!r})


class _LentMachine:
    """sys.path's finder, blind to the modules the lent GPU machine does not have (tests/lent_machine.py)."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in DENIED:
            return None  # absent, as on that machine: optional imports and find_spec probes see no module
        return PathFinder.find_spec(name, path, target)

    @classmethod
    def invalidate_caches(cls):
        PathFinder.invalidate_caches()


sys.meta_path[:] = [_LentMachine if finder is PathFinder else finder for finder in sys.meta_path]
'''


def blocking_site(folder: Path, extra_denied: tuple[str, ...] = ()) -> Path:
    """Write ``folder/sitecustomize.py`` (see the module docstring); returns ``folder`` for PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    denied = sorted(denied_modules() | set(extra_denied))
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(denied=denied))
    return folder
