"""Shared pieces of the dataset importers and the exporter.

Every importer first reads and checks the whole dataset (JSON files, keys,
image paths, audio array shape) into an :class:`ImportPlan` held in memory,
and only then writes. Writing goes image directories first (each
``frames/``/``crops/`` is built in a temporary sibling and renamed as a
whole), then the small tables, then ``import.json`` last, so an interrupted
or failed import never leaves a half-written artifact that looks valid. A
previous ``import.json`` is removed once the new images are ready, just
before anything is replaced: a folder without one is not a finished import.
The writing itself is :mod:`hfagp.datasets.writer`; this module holds the
readers' helpers and the plan.

Conventions fixed here:

* NeRF / OpenGL cam2world (x right, y up, z backward) becomes OpenCV
  (x right, y down, z forward) by negating columns 1 and 2 of the rotation;
  the same operation converts back.
* Normalised intrinsics are EG3D's 9 floats ``[fx/W, 0, cx/W, 0, fy/H, cy/H, 0, 0, 1]``.
* ``source_cameras.parquet`` keeps a dataset's own cameras (``frame``,
  ``cam2world_opencv`` 16 floats row-major, ``intrinsics_normalised`` 9
  floats, plus the dataset's face box when it has one). They live in the
  dataset tracker's world, NOT in EG3D's: the parquet metadata ``hfagp``
  says so. EG3D crops and labels come from our own landmarks + align stages.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from hfagp.errors import HfagpError
from hfagp.io.artifacts import load_npy, read_json
from hfagp.logs import get_logger

log = get_logger("datasets")

DEFAULT_FPS = 25.0
SOURCE_CAMERAS_NOTE = (
    "cameras of the imported dataset, converted to OpenCV axes (x right, y down, z forward; NeRF/OpenGL "
    "c2w with columns 1 and 2 negated). They are in the dataset tracker's world, NOT EG3D's world: "
    "EG3D crops and labels come from the landmarks + align stages."
)
METADATA_KEY = b"hfagp"
AUDIO_WINDOW = 16
AUDIO_DIM = 29
# Artifacts derived from frames/; after an import that does not write them they may be stale.
DERIVED_ARTIFACTS = (
    "landmarks.parquet",
    "crops",
    "cameras.parquet",
    "dataset.json",
    "expressions.parquet",
    "audio_features.npy",
    "source_cameras.parquet",
)


# ---------------------------------------------------------------------------- reading


def load_json(path: Path, what: str) -> dict:
    """Parse a dataset JSON file; errors name the file and the fix."""
    data = read_json(path, what, "check the dataset folder and --format, or re-export / repair the file")
    if not isinstance(data, dict):
        raise HfagpError(f"{path} must hold a JSON object, found {type(data).__name__}; is it the right file?")
    return data


def require(mapping: dict, key: str, path: Path, where: str = "") -> Any:
    """``mapping[key]`` or an error naming the file, the place and the missing key."""
    if key not in mapping:
        place = f" ({where})" if where else ""
        raise HfagpError(
            f"{path}{place} lacks the key {key!r}; it does not follow the expected layout "
            f"(keys present: {sorted(mapping)[:12]}); fix the file or pick the right --format"
        )
    return mapping[key]


def first_key(mapping: dict, keys: Iterable[str], path: Path, where: str = "") -> tuple[str, Any]:
    """The first of ``keys`` present in ``mapping`` (alternative spellings of one field)."""
    keys = list(keys)
    for key in keys:
        if key in mapping:
            return key, mapping[key]
    place = f" ({where})" if where else ""
    raise HfagpError(
        f"{path}{place} has none of the keys {keys} (keys present: {sorted(mapping)[:12]}); "
        f"fix the file or pick the right --format"
    )


def frames_list(data: dict, path: Path) -> list[dict]:
    """The ``frames`` array of a transforms file, checked to be a list of objects."""
    frames = require(data, "frames", path)
    if not isinstance(frames, list) or not all(isinstance(f, dict) for f in frames):
        raise HfagpError(f"{path}: 'frames' must be a list of objects; fix the file")
    return frames


def as_matrix(value: Any, path: Path, where: str) -> np.ndarray:
    """A 4x4 (or 3x4, completed) finite matrix from JSON."""
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        matrix = np.zeros(0)
    if matrix.shape == (3, 4):
        matrix = np.vstack([matrix, [0.0, 0.0, 0.0, 1.0]])
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise HfagpError(f"{path} ({where}): transform_matrix must be a finite 4x4 matrix; fix the file")
    return matrix


def as_vector(value: Any, path: Path, where: str, key: str, size: int | None = None) -> np.ndarray:
    """A finite float vector from JSON (optionally of a fixed size)."""
    try:
        vector = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        vector = np.zeros((0, 0))
    if vector.ndim != 1 or not np.all(np.isfinite(vector)) or (size is not None and vector.size != size):
        want = f"{size} " if size is not None else ""
        raise HfagpError(f"{path} ({where}): {key!r} must be a list of {want}finite numbers; fix the file")
    return vector


def as_int(value: Any, path: Path, where: str, key: str) -> int:
    """A non-negative integer id (ints or integral strings/floats as written by some tools)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or number != int(number) or number < 0:
        raise HfagpError(f"{path} ({where}): {key!r} must be a non-negative integer, found {value!r}; fix the file")
    return int(number)


def opengl_to_opencv(cam2world: np.ndarray) -> np.ndarray:
    """NeRF/OpenGL cam2world -> OpenCV cam2world (and back: the map is its own inverse)."""
    out = np.array(cam2world, dtype=np.float64)
    out[:3, 1:3] *= -1.0
    return out


def normalised_intrinsics(fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> np.ndarray:
    """EG3D's 9 normalised intrinsics from pixel values."""
    return np.array([fx / width, 0.0, cx / width, 0.0, fy / height, cy / height, 0.0, 0.0, 1.0])


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file without decoding it all."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except Exception as err:  # PIL raises several types for unreadable files
        raise HfagpError(
            f"cannot read image {path} ({err}); replace the file or remove its frame from the dataset"
        ) from None


def check_images(paths: Iterable[tuple[Path, str]]) -> None:
    """Every frame's image must exist; the error names the image and the JSON that lists it."""
    missing = [(p, src) for p, src in paths if not p.is_file()]
    if missing:
        path, source = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise HfagpError(
            f"image {path} listed in {source} is missing{more}; restore the image or remove its frame from {source}"
        )


def load_audio_array(path: Path, needed_rows: int) -> np.ndarray:
    """An AD-NeRF ``aud.npy`` (M, 16, 29) with at least ``needed_rows`` rows, as float64."""
    array = load_npy(path, "audio array", "it must be an AD-NeRF aud.npy (M,16,29)")
    if array.ndim != 3 or array.shape[1:] != (AUDIO_WINDOW, AUDIO_DIM) or not np.issubdtype(array.dtype, np.number):
        raise HfagpError(
            f"{path} has shape {array.shape} ({array.dtype}); an AD-NeRF aud.npy is (M, {AUDIO_WINDOW}, {AUDIO_DIM}) "
            f"DeepSpeech windows; recompute it with `hfagp audio-features --fps 25`"
        )
    if array.shape[0] < needed_rows:
        raise HfagpError(
            f"{path} has {array.shape[0]} windows but the transforms files use aud_id up to {needed_rows - 1}; "
            f"the aud.npy belongs to another video or was cut short: recompute it for this video"
        )
    return array.astype(np.float64)


# ---------------------------------------------------------------------------- plan


@dataclass
class FrameRecord:
    """One imported frame: its number, its source image and where it came from."""

    frame: int
    image: Path  # source image file
    source_name: str  # image path relative to the dataset root (POSIX)
    source_split: str  # train / val / test / test2, as named by the dataset
    expression: np.ndarray | None = None
    aud_id: int | None = None
    cam2world_opencv: np.ndarray | None = None  # dataset tracker world (nerface / adnerf)
    intrinsics: np.ndarray | None = None  # 9 normalised
    box: np.ndarray | None = None  # dataset's face box
    label: np.ndarray | None = None  # 25-float EG3D label (hfagp layout)


@dataclass
class ImportPlan:
    """Everything an import will write, checked before anything is written."""

    format: str
    dataset: Path
    records: list[FrameRecord]
    split: dict[str, list[int]]  # train / test (+ extra keys such as val, test2)
    split_source: str
    files: list[str]  # dataset files read (relative to the dataset root)
    fps: float
    fps_origin: str
    expression_model: str | None = None
    expression_source: str | None = None
    audio: np.ndarray | None = None  # the dataset's aud.npy (M,16,29) float64
    audio_source: Path | None = None
    box_name: str | None = None  # column name of the face box in source_cameras.parquet
    write_crops: bool = False  # hfagp layout: the images are the 512 crops with labels
    numbering: str = ""
    notes: list[str] = field(default_factory=list)


def resolve_fps(fps: float | None, default: float = DEFAULT_FPS) -> tuple[float, str]:
    """The frame rate: --fps, else ``default``; the origin is logged."""
    if fps is None:
        return default, f"default {default:g} fps (the dataset stores none; pass --fps to change it)"
    if not fps > 0:
        raise HfagpError(f"--fps must be positive, got {fps}")
    return float(fps), "--fps"


def check_plan(plan: ImportPlan) -> None:
    """Dataset-wide checks: frames exist, numbers unique, expressions consistent."""
    if not plan.records:
        raise HfagpError(f"{plan.dataset} holds no frames ({', '.join(plan.files) or 'no transforms files'}); "
                         f"nothing to import: check the dataset folder and --format")
    if not plan.split.get("train"):
        raise HfagpError(f"{plan.dataset}: the training split is empty ({plan.files[0] if plan.files else ''}); "
                         f"a dataset needs training frames")
    numbers = [r.frame for r in plan.records]
    if len(set(numbers)) != len(numbers):
        seen: dict[int, FrameRecord] = {}
        for record in plan.records:
            if record.frame in seen:
                raise HfagpError(
                    f"{plan.dataset}: frame id {record.frame} is listed twice ({seen[record.frame].source_split} "
                    f"and {record.source_split}); each image id may appear in one transforms file only"
                )
            seen[record.frame] = record
    with_expr = [r for r in plan.records if r.expression is not None]
    if with_expr and len(with_expr) != len(plan.records):
        lacking = next(r for r in plan.records if r.expression is None)
        raise HfagpError(
            f"{plan.dataset}: frame {lacking.source_name} ({lacking.source_split} transforms file) has no "
            f"'expression' while other frames do; every frame needs one (fix the transforms file)"
        )
    sizes = {r.expression.size for r in with_expr}
    if len(sizes) > 1:
        first = with_expr[0]
        odd = next(r for r in with_expr if r.expression.size != first.expression.size)
        raise HfagpError(
            f"{plan.dataset}: expression vectors have different sizes ({sorted(sizes)}): {first.source_name} "
            f"({first.source_split}) has {first.expression.size}, {odd.source_name} ({odd.source_split}) has "
            f"{odd.expression.size}; all frames must come from one tracker (fix the transforms files)"
        )


def relative(path: Path, root: Path) -> str:
    """POSIX path of ``path`` relative to ``root`` (for manifests and source names)."""
    return Path(os.path.relpath(path, root)).as_posix()
