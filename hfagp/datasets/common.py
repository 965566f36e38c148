"""Shared pieces of the dataset importers and the exporter.

Every importer first reads and checks the whole dataset (JSON files, keys,
image paths, audio array shape) into an :class:`ImportPlan` held in memory,
and only then writes. Writing goes image directories first (each
``frames/``/``crops/`` is built in a temporary sibling and renamed as a
whole), then the small tables, then ``import.json`` last, so an interrupted
or failed import never leaves a half-written artifact that looks valid. A
previous ``import.json`` is removed once the new images are ready, just
before anything is replaced: a folder without one is not a finished import.

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

import contextlib
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from hfagp import __version__, atomic
from hfagp.errors import HfagpError
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
    if not path.is_file():
        raise HfagpError(f"{what} {path} not found; check the dataset folder and --format")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise HfagpError(f"{path} is not valid JSON ({err}); re-export or repair the file") from None
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
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise HfagpError(f"cannot read {path} ({err}); it must be an AD-NeRF aud.npy (M,16,29)") from None
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


# ---------------------------------------------------------------------------- writing


def _write_images(
    records: list[FrameRecord],
    targets: list[Path],
    convert: Callable[[FrameRecord], np.ndarray],
    threads: int,
    desc: str,
) -> list[tuple[int, int]]:
    """Read each record's image, convert, write it into every target dir; return (width, height)s."""
    from tqdm import tqdm

    from hfagp.frames import FRAME_NAME, write_rgb

    def one(record: FrameRecord) -> tuple[int, int]:
        rgb = convert(record)
        for target in targets:
            write_rgb(target / FRAME_NAME.format(record.frame), rgb)
        return rgb.shape[1], rgb.shape[0]

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return list(tqdm(pool.map(one, records), total=len(records), desc=desc, unit="frame", leave=False))


def read_source_image(record: FrameRecord) -> np.ndarray:
    """RGB uint8 of a record's source image (alpha dropped)."""
    from hfagp.frames import read_rgb

    if not record.image.is_file():
        raise HfagpError(f"image {record.image} ({record.source_split}) is missing; restore it and rerun the import")
    return read_rgb(record.image)


def parquet_with_metadata(path: Path, table: pd.DataFrame, metadata: dict[str, Any]) -> None:
    """Write a parquet table atomically with a JSON object under the ``hfagp`` schema metadata key."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table.reset_index(drop=True), preserve_index=False)
    meta = dict(arrow.schema.metadata or {})
    meta[METADATA_KEY] = json.dumps(metadata).encode()
    arrow = arrow.replace_schema_metadata(meta)
    with atomic.atomic_path(path) as tmp:
        pq.write_table(arrow, tmp)


def read_parquet_metadata(path: Path) -> dict[str, Any]:
    """The ``hfagp`` JSON metadata of a parquet file (empty when absent)."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def write_import(
    plan: ImportPlan, out: Path, threads: int = 1, convert: Callable[[FrameRecord], np.ndarray] | None = None
) -> dict:
    """Write every artifact of ``plan`` into the subject directory ``out``; returns the manifest."""
    from hfagp import geometry as geo
    from hfagp.frames import FRAME_NAME
    from hfagp.tables import write_expressions, write_split

    check_plan(plan)
    out.mkdir(parents=True, exist_ok=True)
    records = sorted(plan.records, key=lambda r: r.frame)
    convert = convert or read_source_image
    written: list[str] = []

    # Everything small is computed before the first byte is written.
    audio_rows = None
    if plan.audio is not None:
        n_rows = max(r.frame for r in records) + 1
        audio_rows = np.zeros((n_rows, AUDIO_WINDOW, AUDIO_DIM), dtype=np.float64)
        aud_ids = [-1] * n_rows
        for record in records:
            audio_rows[record.frame] = plan.audio[record.aud_id]
            aud_ids[record.frame] = record.aud_id
        gaps = n_rows - len(records)
        if gaps:
            log.warning("%d frame numbers below %d have no image in the dataset; their audio rows are zeros",
                        gaps, n_rows)

    # 1. image directories (built aside, renamed as a whole)
    with contextlib.ExitStack() as stack:
        frames_tmp = stack.enter_context(atomic.atomic_directory(out / "frames"))
        targets = [frames_tmp]
        if plan.write_crops:
            targets.append(stack.enter_context(atomic.atomic_directory(out / "crops")))
        sizes = _write_images(records, targets, convert, threads, f"import {plan.format}")
        # Every image converted: the earlier manifest goes before anything is replaced, so that
        # until the new one is written last the folder is visibly not a finished import.
        (out / "import.json").unlink(missing_ok=True)
    written += ["frames/"] + (["crops/"] if plan.write_crops else [])

    # 2. tables
    frames_table = pd.DataFrame(
        {
            "index": [r.frame for r in records],
            "source_index": [r.frame for r in records],
            "timestamp": [r.frame / plan.fps for r in records],
            "fps": plan.fps,
            "source_fps": plan.fps,
            "width": [w for w, _ in sizes],
            "height": [h for _, h in sizes],
            "source_name": [r.source_name for r in records],
            "source_split": [r.source_split for r in records],
        }
    )
    atomic.write_parquet(out / "frames.parquet", frames_table)
    written.append("frames.parquet")

    if plan.write_crops:
        rows = []
        for record in records:
            cam2world = record.label[:16].reshape(4, 4)
            pitch, yaw, roll = geo.euler_from_rotation(cam2world[:3, :3].T)
            radius = float(np.linalg.norm(cam2world[:3, 3]))
            rows.append(
                {
                    "frame": record.frame,
                    "name": FRAME_NAME.format(record.frame),
                    "flag": "imported",
                    "label": record.label,
                    "pitch": pitch,
                    "yaw": yaw,
                    "roll": roll,
                    "radius": radius,
                    "radius_unnormalised": radius,
                    "reprojection_error": float("nan"),
                    "crop_affine": np.full(6, np.nan),
                    "landmarks_crop": np.full(136, np.nan),
                }
            )
        atomic.write_parquet(out / "cameras.parquet", pd.DataFrame(rows))
        atomic.write_json(
            out / "dataset.json", {"labels": [[r["name"], [float(v) for v in r["label"]]] for r in rows]}, indent=None
        )
        written += ["cameras.parquet", "dataset.json"]
    else:
        table = pd.DataFrame(
            {
                "frame": [r.frame for r in records],
                "cam2world_opencv": [r.cam2world_opencv.reshape(16) for r in records],
                "intrinsics_normalised": [r.intrinsics for r in records],
            }
        )
        if plan.box_name:
            table[plan.box_name] = [r.box if r.box is not None else np.full(4, np.nan) for r in records]
        parquet_with_metadata(
            out / "source_cameras.parquet",
            table,
            {"world": "dataset tracker", "note": SOURCE_CAMERAS_NOTE, "format": plan.format, "source": plan.files},
        )
        written.append("source_cameras.parquet")

    if records[0].expression is not None:
        expressions = pd.DataFrame(
            {"frame": [r.frame for r in records], "flag": "imported", "expression": [r.expression for r in records]}
        )
        write_expressions(
            out / "expressions.parquet",
            expressions,
            {"model": plan.expression_model, "source": plan.expression_source, "format": plan.format},
        )
        written.append("expressions.parquet")

    if audio_rows is not None:
        atomic.save_npy(out / "audio_features.npy", audio_rows)
        atomic.write_json(
            out / "audio_features.npy.json",
            {
                "feature": "imported-adnerf-aud.npy",
                "model": None,
                "model_sha1": None,
                "fps": plan.fps,
                "n_windows": int(audio_rows.shape[0]),
                "window": AUDIO_WINDOW,
                "dim": AUDIO_DIM,
                "source": str(plan.audio_source),
                "timing": f"imported: row f = aud.npy[aud_id of frame f] ({plan.format} transforms files)",
                "aud_ids": aud_ids,
                "dtype": str(audio_rows.dtype),
                "hfagp_version": __version__,
            },
        )
        written += ["audio_features.npy", "audio_features.npy.json"]

    extra = {k: v for k, v in plan.split.items() if k not in ("train", "test")}
    write_split(out / "split.json", plan.split.get("train", []), plan.split.get("test", []), plan.split_source, **extra)
    written.append("split.json")

    done = {w.rstrip("/") for w in written}
    stale = [name for name in DERIVED_ARTIFACTS if (out / name).exists() and name not in done]
    if stale:
        log.warning(
            "%s already holds %s from an earlier run; they do not match the imported frames unless recomputed: "
            "delete them or rerun their stages",
            out,
            ", ".join(stale),
        )
    manifest = {
        "format": plan.format,
        "dataset": str(plan.dataset.resolve()),
        "files": plan.files,
        "frames": len(records),
        "frame_numbering": plan.numbering,
        "fps": plan.fps,
        "fps_origin": plan.fps_origin,
        "split_source": plan.split_source,
        "artifacts": written,
        "notes": plan.notes,
        "hfagp_version": __version__,
    }
    atomic.write_json(out / "import.json", manifest)
    log.info(
        "imported %d frames (%s) from %s into %s: %s; %s",
        len(records),
        ", ".join(f"{k} {len(v)}" for k, v in plan.split.items()),
        plan.dataset,
        out,
        ", ".join(written),
        plan.fps_origin,
    )
    return manifest


def relative(path: Path, root: Path) -> str:
    """POSIX path of ``path`` relative to ``root`` (for manifests and source names)."""
    return Path(os.path.relpath(path, root)).as_posix()
