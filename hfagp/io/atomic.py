"""Atomic artifact writes: write to a temporary sibling, then rename.

An interrupted run must never leave a half-written file that looks valid to
Snakemake or to a later stage, so every artifact goes through one of these
helpers. ``os.replace`` is atomic on POSIX when source and target are on the
same file system, which a sibling temp path guarantees.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _temp_sibling(path: Path, is_dir: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real suffix last so libraries that pick a format from the
    # extension (PIL, pyarrow, numpy) still recognise the temp file.
    prefix = f".{path.stem}.tmp-"
    if is_dir:
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
        folder.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700 (see below)
        return folder
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=path.parent)
    # mkstemp creates the file 0600; give the artifact the mode any new file gets (0666 less the umask), so
    # results stay readable by the others a cluster account shares them with.
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    return Path(name)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path that is renamed onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    tmp = _temp_sibling(target, is_dir=False)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` as a whole on success.

    An existing ``path`` is only removed once the new directory is complete.
    """
    target = Path(path)
    tmp = _temp_sibling(target, is_dir=True)
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    """Atomically write ``obj`` as JSON."""
    write_text(path, json.dumps(obj, indent=indent) + "\n")


def write_parquet(path: str | os.PathLike, frame: "pandas.DataFrame") -> None:  # noqa: F821
    """Atomically write a pandas DataFrame as parquet (pyarrow engine)."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, engine="pyarrow", index=False)


def save_npy(path: str | os.PathLike, array: "numpy.ndarray") -> None:  # noqa: F821
    """Atomically save one numpy array (``.npy``)."""
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


# The zip members' timestamp: np.savez stamps each member with the wall-clock time, so the same arrays
# saved a second apart gave different files; a fixed stamp makes equal arrays equal bytes.
NPZ_MEMBER_TIME = (1980, 1, 1, 0, 0, 0)


def save_npz(path: str | os.PathLike, **arrays: "numpy.ndarray") -> None:  # noqa: F821
    """Atomically save several numpy arrays (``.npz``, uncompressed, as ``np.savez``; read with ``np.load``).

    Bitwise the same file for the same arrays: members in argument order, each ``<name>.npy`` in numpy's
    own format, dated :data:`NPZ_MEMBER_TIME`.
    """
    import zipfile

    import numpy as np

    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in arrays.items():
                member = zipfile.ZipInfo(f"{name}.npy", date_time=NPZ_MEMBER_TIME)
                with archive.open(member, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(array), allow_pickle=False)


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    """Atomically ``torch.save`` an object; the same object gives the same bytes.

    Saved through a file object: given a path, torch names the archive's top folder after the file, which
    here would be the random temporary name, so two saves of equal weights differed in those bytes.
    """
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
