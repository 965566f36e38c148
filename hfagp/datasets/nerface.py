"""Import a NeRFace dataset (``transforms_{train,val,test}.json`` + PNG frames).

Layout read (gafniguy/4D-Facial-Avatars ``real_to_nerf.py`` / ``load_flame.py``)::

    DATASET/transforms_train.json   (required)
    DATASET/transforms_val.json     (optional)
    DATASET/transforms_test.json    (optional)
    {"camera_angle_x": a, "intrinsics": [fx, fy, cx/W, cy/H],
     "frames": [{"file_path": "./train/f_0000", "bbox": [4], "transform_matrix": 4x4,
                 "expression": [76]}, ...]}

``file_path`` is relative to the dataset root and has no extension; like the
NeRFace loader we append ``.png``. Without ``intrinsics`` the focal length
comes from ``camera_angle_x`` (principal point at the centre).

Frame numbers: 0, 1, ... in the order train, val, test, each in file order;
``frames.parquet`` records each frame's ``source_name`` (image path relative
to the dataset) and ``source_split``. Timestamps are ``frame / fps`` with fps
from ``--fps`` (NeRFace stores none; default 25).

Writes ``frames/``, ``frames.parquet``, ``expressions.parquet`` (model
``nerface76``, flag ``imported``), ``split.json`` (train = train file, test =
test file, extra ``val``), ``source_cameras.parquet`` (+ ``bbox`` column) and
``import.json``. Crops and EG3D cameras are NOT imported: run the landmarks
and align stages on the imported frames.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from hfagp.datasets import common as C
from hfagp.errors import HfagpError

SPLITS = (("train", "transforms_train.json"), ("val", "transforms_val.json"), ("test", "transforms_test.json"))


def frame_image(root: Path, file_path: str) -> Path:
    """The image of a NeRFace ``file_path``: the path + ``.png`` (an explicit extension is also accepted)."""
    appended = root / f"{file_path}.png"
    explicit = Path(file_path).suffix.lower() in (".png", ".jpg", ".jpeg")
    if not appended.is_file() and explicit and (root / file_path).is_file():
        return root / file_path
    return appended


def _camera_intrinsics(meta: dict, path: Path, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    intrinsics = meta.get("intrinsics")
    if intrinsics is not None:
        fx, fy, cx, cy = C.as_vector(intrinsics, path, "top level", "intrinsics", size=4)
        return np.array([fx / width, 0.0, cx, 0.0, fy / height, cy, 0.0, 0.0, 1.0])
    angle = C.require(meta, "camera_angle_x", path)
    try:
        focal = 0.5 * width / math.tan(0.5 * float(angle))
    except (TypeError, ValueError, ZeroDivisionError):
        raise HfagpError(f"{path}: camera_angle_x must be a number of radians, found {angle!r}; fix the file") from None
    return C.normalised_intrinsics(focal, focal, 0.5 * width, 0.5 * height, width, height)


def plan_nerface(dataset: Path, fps: float | None = None) -> C.ImportPlan:
    """Read and check a NeRFace dataset; nothing is written."""
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise HfagpError(f"dataset folder {dataset} not found; pass the folder holding transforms_train.json")
    rate, origin = C.resolve_fps(fps)
    records: list[C.FrameRecord] = []
    split: dict[str, list[int]] = {"train": [], "test": [], "val": []}
    files = []
    for name, filename in SPLITS:
        path = dataset / filename
        if not path.is_file():
            if name == "train":
                raise HfagpError(f"{path} not found; a NeRFace dataset has transforms_train.json at its root "
                                 f"(is --format right?)")
            C.log.info("%s absent: no %s frames", path, name)
            continue
        meta = C.load_json(path, "NeRFace transforms file")
        frames = C.frames_list(meta, path)
        files.append(filename)
        for position, entry in enumerate(frames):
            where = f"frames[{position}]"
            file_path = C.require(entry, "file_path", path, where)
            if not isinstance(file_path, str):
                raise HfagpError(f"{path} ({where}): file_path must be a string; fix the file")
            image = frame_image(dataset, file_path)
            C.check_images([(image, str(path))])
            matrix = C.as_matrix(C.require(entry, "transform_matrix", path, where), path, where)
            expression = entry.get("expression")
            box = entry.get("bbox")
            record = C.FrameRecord(
                frame=len(records),
                image=image,
                source_name=C.relative(image, dataset),
                source_split=name,
                expression=None if expression is None else C.as_vector(expression, path, where, "expression"),
                cam2world_opencv=C.opengl_to_opencv(matrix),
                intrinsics=_camera_intrinsics(meta, path, C.image_size(image)),
                box=None if box is None else C.as_vector(box, path, where, "bbox", size=4),
            )
            records.append(record)
            split[name].append(record.frame)
    has_expression = bool(records) and records[0].expression is not None
    if records and not has_expression and all(r.expression is None for r in records):
        C.log.warning("%s: no frame carries an 'expression'; expressions.parquet is not written", dataset)
    elif has_expression and records[0].expression.size != 76:
        C.log.warning("%s: expressions have %d values, not NeRFace's 76", dataset, records[0].expression.size)
    return C.ImportPlan(
        format="nerface",
        dataset=dataset,
        records=records,
        split=split,
        split_source=f"nerface dataset files: train = transforms_train.json, test = transforms_test.json, "
        f"val = transforms_val.json ({', '.join(files)} present)",
        files=files,
        fps=rate,
        fps_origin=origin,
        expression_model="nerface76",
        expression_source=", ".join(files),
        box_name="bbox",
        numbering="0.. in order train, val, test, each in file order (frames.parquet source_name/source_split)",
    )
