"""Writers of small datasets in the published layouts (NeRFace, AD-NeRF, HFA-GP), for the import tests.

Each writer uses the exact field names of the original tools and returns
what it wrote (poses in OpenCV axes, images as decoded RGB, expressions,
audio ids) so that tests can compare the imported artifacts field by field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hfagp.eg3d import camera

FLIP_YZ_COLUMNS = np.diag([1.0, -1.0, -1.0, 1.0])


def opencv_pose(k: int) -> np.ndarray:
    """A distinct known OpenCV cam2world per k (yaw/pitch around EG3D's pivot)."""
    return camera.look_at_cam2world(yaw_deg=-20.0 + 7.0 * k, pitch_deg=(-1) ** k * 3.0 * (k % 4), radius=2.7 + 0.05 * k)


def to_opengl(cam2world_opencv: np.ndarray) -> np.ndarray:
    """OpenCV -> NeRF/OpenGL cam2world (negate the y and z axes' columns)."""
    return cam2world_opencv @ FLIP_YZ_COLUMNS


def random_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth random RGB image (compresses well, survives JPEG roughly)."""
    small = rng.integers(0, 256, size=(max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def write_image(path: Path, rgb: np.ndarray) -> np.ndarray:
    """Write RGB (PNG or JPEG by suffix) and return the pixels a reader decodes back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))


@dataclass
class Written:
    """What a writer put into a dataset folder (per frame, in the order an importer numbers them)."""

    root: Path
    names: list[str] = field(default_factory=list)  # source image path relative to root
    splits: list[str] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    poses: list[np.ndarray] = field(default_factory=list)  # OpenCV cam2world
    expressions: list[np.ndarray] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)  # img_id (AD-NeRF style)
    aud_ids: list[int] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    aud: np.ndarray | None = None


def write_nerface(
    root: Path,
    counts: dict[str, int] | None = None,
    size: tuple[int, int] = (64, 48),
    expression_size: int = 76,
    intrinsics: list[float] | None = (70.0, 72.0, 0.48, 0.52),
    camera_angle_x: float = 0.9,
    seed: int = 0,
) -> Written:
    """A NeRFace dataset: transforms_{train,val,test}.json + <split>/f_XXXX.png."""
    counts = counts or {"train": 3, "val": 1, "test": 2}
    rng = np.random.default_rng(seed)
    written = Written(root)
    k = 0
    for split, count in counts.items():
        frames = []
        for i in range(count):
            file_path = f"./{split}/f_{k:04d}"
            pose = opencv_pose(k)
            expression = rng.normal(size=expression_size)
            box = [float(v) for v in rng.uniform(0, 1, size=4)]
            image = write_image(root / f"{split}/f_{k:04d}.png", random_image(rng, *size))
            frames.append(
                {
                    "file_path": file_path,
                    "bbox": box,
                    "transform_matrix": to_opengl(pose).tolist(),
                    "expression": expression.tolist(),
                }
            )
            written.names.append(f"{split}/f_{k:04d}.png")
            written.splits.append(split)
            written.images.append(image)
            written.poses.append(pose)
            written.expressions.append(expression)
            written.boxes.append(box)
            k += 1
        meta = {"camera_angle_x": camera_angle_x, "frames": frames}
        if intrinsics is not None:
            meta["intrinsics"] = list(intrinsics)
        write_json(root / f"transforms_{split}.json", meta)
    return written


def write_adnerf(
    root: Path,
    train_ids: list[int] = (0, 1, 2, 4),
    val_ids: list[int] = (5, 3),
    aud_ids: dict[int, int] | None = None,
    aud_rows: int = 9,
    size: tuple[int, int] = (48, 40),
    focal: float = 1200.0,
    test_variant: bool = False,
    seed: int = 1,
) -> Written:
    """An AD-NeRF dataset: transforms_{train,val}.json, head_imgs/<img_id>.jpg, aud.npy.

    ``aud_ids`` maps img_id -> aud_id (default: a permutation); ``test_variant``
    writes AD-NeRF's test-file spelling (``focal_length``, ``frame_id``, no
    ``aud_id``, so aud_id = frame_id).
    """
    rng = np.random.default_rng(seed)
    all_ids = list(train_ids) + list(val_ids)
    if aud_ids is None:
        aud_ids = {i: (aud_rows - 1 - i) % aud_rows for i in all_ids}
    if test_variant:
        aud_ids = {i: i for i in all_ids}
    written = Written(root)
    for split, ids in (("train", train_ids), ("val", val_ids)):
        frames = []
        for img_id in ids:
            pose = opencv_pose(img_id)
            rect = [float(v) for v in rng.integers(0, 40, size=4)]
            image = write_image(root / "head_imgs" / f"{img_id}.jpg", random_image(rng, *size))
            entry = {"transform_matrix": to_opengl(pose).tolist()}
            if test_variant:
                entry["frame_id"] = img_id
            else:
                entry.update(img_id=img_id, aud_id=aud_ids[img_id], face_rect=rect)
            frames.append(entry)
            written.names.append(f"head_imgs/{img_id}.jpg")
            written.splits.append(split)
            written.images.append(image)
            written.poses.append(pose)
            written.ids.append(img_id)
            written.aud_ids.append(aud_ids[img_id])
            written.boxes.append(rect)
        focal_key = "focal_length" if test_variant else "focal_len"
        write_json(root / f"transforms_{split}.json",
                   {focal_key: focal, "cx": size[0] / 2.0, "cy": size[1] / 2.0, "frames": frames})
    written.aud = rng.normal(size=(aud_rows, 16, 29)).astype(np.float32)
    np.save(root / "aud.npy", written.aud)
    return written


def write_hfagp(
    root: Path,
    mode: str = "3dmm",
    counts: dict[str, int] | None = None,
    expression_size: int = 76,
    aud_rows: int = 8,
    seed: int = 2,
) -> Written:
    """An HFA-GP person folder: {train,test,test2}/cropped_images/*.png + test.json, transforms files, aud.npy.

    ``mode``: ``3dmm`` (NeRFace-style transforms with file_path + expression),
    ``audio`` (AD-NeRF-style img_id/aud_id, crops <img_id>.png, root aud.npy;
    img ids in file order 0.. per folder are shuffled), ``labels`` (crops and
    test.json only).
    """
    counts = counts or {"train": 3, "test": 2}
    rng = np.random.default_rng(seed)
    transforms_of = {"train": "transforms_train.json", "test": "transforms_val.json", "test2": "transforms_test.json"}
    written = Written(root)
    total = sum(counts.values())
    id_order = list(rng.permutation(total)) if mode == "audio" else list(range(total))
    k = 0
    for folder, count in counts.items():
        crops = root / folder / "cropped_images"
        labels, frames = [], []
        for _ in range(count):
            img_id = int(id_order[k])
            name = f"{img_id}.png" if mode == "audio" else f"img_{1000 + 3 * k:05d}.png"
            pose = opencv_pose(k)
            label = camera.camera_label(pose)
            image = write_image(crops / name, random_image(rng, 512, 512))
            labels.append([name, label.tolist()])
            entry = {"transform_matrix": to_opengl(pose).tolist()}
            if mode == "audio":
                aud_id = (img_id * 3 + 1) % aud_rows
                entry.update(img_id=img_id, aud_id=aud_id)
                written.ids.append(img_id)
                written.aud_ids.append(aud_id)
            else:
                expression = rng.normal(size=expression_size)
                entry.update(file_path=f"./{folder}/{Path(name).stem}", expression=expression.tolist())
                written.expressions.append(expression)
            frames.append(entry)
            written.names.append(f"{folder}/cropped_images/{name}")
            written.splits.append(folder)
            written.images.append(image)
            written.poses.append(pose)
            written.labels.append(label)
            k += 1
        # with transforms files, test.json is in another order (the lookup is by name);
        # without, test.json order is the frame order
        write_json(crops / "test.json", {"labels": labels if mode == "labels" else labels[::-1]})
        if mode != "labels":
            write_json(root / transforms_of[folder], {"camera_angle_x": 0.33, "frames": frames})
    if mode == "audio":
        written.aud = rng.normal(size=(aud_rows, 16, 29))
        np.save(root / "aud.npy", written.aud)
    return written
