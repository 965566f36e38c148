"""Stage ``align``: EG3D-aligned 512x512 crops and camera labels for every tracked frame.

For each frame whose landmarks are ``ok`` or ``interpolated`` (frames in the
kept face spans, :mod:`hfagp.preprocess.landmarks`):

1. Crop: the 5 alignment points (from the 68 smoothed landmarks) are fitted
   to the standard 3D points (POS); the image is resized so the face measures
   300 px per model unit, a 1024 window is cut around the face (zeros outside
   the image), its centre 700 square is resized to 512 (Lanczos), exactly as
   EG3D's in-the-wild preprocessing does.
2. Pose: the landmarks, mapped into that crop, are solved in the crop's own
   EG3D camera (f = 4.2647 * 512), so image and label share one frame. The
   default solver (``morphable``) fits the sparse morphable model to all
   frames jointly (one identity, per-frame pose and expression,
   :mod:`hfagp.face3d.fit`), so mouth motion and the person's face shape
   do not leak into the head pose; it is the same fit that gives the
   expression coefficients (stage ``expressions``), so cameras and expressions
   share one pose source. ``rigid`` solves each frame against the mean face
   (:mod:`hfagp.face3d.face_model`) alone.
3. Label: the pose becomes an OpenCV cam2world in EG3D world coordinates,
   the camera distance is normalised to ``radius`` (2.7; None keeps it), and
   the normalised intrinsics are appended.

Outputs:

* ``crops/%06d.png``: 512x512 RGB crops (frame numbers as in ``frames/``).
* ``cameras.parquet``: ``frame``, ``name`` (crop file name), ``flag``,
  ``label`` (25 floats), ``pitch``, ``yaw``, ``roll`` (degrees, see
  :func:`hfagp.face3d.geometry.euler_from_rotation`), ``radius`` (distance of the
  label camera from the origin), ``radius_unnormalised``,
  ``reprojection_error`` (RMS px in the 512 crop, over the points the solver
  used: all 68 for ``morphable``), ``crop_affine`` (6 floats,
  source pixel -> crop pixel), ``landmarks_crop`` (136 floats).
* ``dataset.json``: EG3D's ``{"labels": [[name, [25 floats]], ...]}``.

The crops (step 1, the part that scales with the video) can run in chunks of
frames as separate jobs (:func:`run_align_chunk`: a folder of crops and its
``crops.parquet``); :func:`run_align` then gathers them (hard links, no copy)
and solves the poses of all frames together, so the result is identical to a
whole-video run.
"""

from __future__ import annotations

import os
import shutil
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from hfagp.eg3d import camera
from hfagp.errors import HfagpError
from hfagp.face3d import geometry as geo
from hfagp.face3d.face_model import INNER_51, LM3D_STD_5, landmark_model_68
from hfagp.face3d.fit import FitSettings
from hfagp.io import atomic
from hfagp.io.artifacts import read_parquet
from hfagp.io.images import FRAME_NAME, write_rgb
from hfagp.io.tables import read_landmarks
from hfagp.logs import get_logger
from hfagp.preprocess.frame_store import chunk_frames, open_frames
from hfagp.preprocess.landmarks import used_frames

log = get_logger("align")


@dataclass(frozen=True)
class AlignSettings:
    """Options of the crop + camera stage."""

    radius: float | None = camera.DEFAULT_RADIUS
    pose_landmarks: str = "inner51"  # or "all68": the rigid solve (and the joint fit's start)
    pose_solver: str = "morphable"  # or "rigid"
    fit: FitSettings = FitSettings()


def align_crop(rgb: np.ndarray, landmarks_68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 512x512 EG3D crop of one frame and its 2x3 source->crop affine.

    The literal reference sequence with Pillow, so pixels match EG3D's
    preprocessing for the same landmarks: resize the whole frame (bicubic) to
    the face scale, cut the 1024 window (zeros outside the frame), cut its
    centre 700, Lanczos-resize to 512. (Resampling only the needed region with
    Pillow's ``box`` is about 2x faster but differs by up to 2 grey levels.)
    """
    height, width = rgb.shape[:2]
    window = geo.crop_window(landmarks_68, (width, height), LM3D_STD_5)
    image = Image.fromarray(rgb).resize(window.resized_size, resample=Image.BICUBIC)
    canvas = image.crop((window.left, window.up, window.left + geo.CANVAS_SIZE, window.up + geo.CANVAS_SIZE))
    margin = (geo.CANVAS_SIZE - geo.CENTER_CROP) // 2
    centre = canvas.crop((margin, margin, margin + geo.CENTER_CROP, margin + geo.CENTER_CROP))
    crop = centre.resize((geo.OUTPUT_SIZE, geo.OUTPUT_SIZE), resample=Image.LANCZOS)
    return np.asarray(crop), window.affine()


def pose_landmark_indices(name: str) -> np.ndarray:
    """Landmark indices used for the pose solve."""
    if name == "inner51":
        return INNER_51
    if name == "all68":
        return np.arange(68)
    raise HfagpError(f"unknown pose_landmarks '{name}'; use 'inner51' or 'all68' in config.yaml")


def camera_row(landmarks_crop: np.ndarray, settings: AlignSettings) -> dict:
    """Solve the rigid pose from crop landmarks and return the camera columns of one frame."""
    indices = pose_landmark_indices(settings.pose_landmarks)
    return pose_columns(geo.solve_head_pose(landmarks_crop[indices], landmark_model_68()[indices]), settings)


def joint_fit_poses(landmarks_crop: np.ndarray, fit: FitSettings) -> list[geo.HeadPose]:
    """Head poses of the joint morphable-model fit of a whole sequence ((F, 68, 2) crop landmarks)."""
    from hfagp.face3d.fit import fit_sequence
    from hfagp.face3d.morphable import sparse_model

    result = fit_sequence(sparse_model(), landmarks_crop, fit)
    return [geo.HeadPose(r, t, float(e)) for r, t, e in zip(result.rotation, result.translation, result.residual_px)]


def pose_columns(pose: geo.HeadPose, settings: AlignSettings) -> dict:
    """The camera columns of one frame for a solved head pose."""
    cam2world = geo.pose_to_cam2world(pose, settings.radius)
    unnormalised = geo.pose_to_cam2world(pose, None)
    pitch, yaw, roll = geo.euler_from_rotation(pose.rotation)
    return {
        "label": camera.camera_label(cam2world),
        "pitch": pitch,
        "yaw": yaw,
        "roll": roll,
        "radius": float(np.linalg.norm(cam2world[:3, 3])),
        "radius_unnormalised": float(np.linalg.norm(unnormalised[:3, 3])),
        "reprojection_error": pose.reprojection_error,
    }


CROPS_TABLE = "crops.parquet"


def _bounded_map(pool: ThreadPoolExecutor, work, items, window: int):
    """``pool.map(work, items)`` that keeps at most ``window`` items in flight (decoded frames are large)."""
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(work, *item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def crop_frames(frames_dir: str | Path, frames_table: str | Path | None, landmarks_path: str | Path, out_dir: Path,
                chunk: int = 0, chunk_size: int = 0, threads: int = 1) -> list[dict]:
    """Write the 512 crops of the used frames of one chunk of frames (``chunk_size`` 0: all) into ``out_dir``.

    Returns one row per crop: ``frame``, ``name``, ``flag``, ``span``,
    ``crop_affine``, ``landmarks_crop`` (the camera columns come later).
    """
    table, points = read_landmarks(landmarks_path)
    row_of = {int(f): i for i, f in enumerate(table.frame)}
    mine = set(chunk_frames(table.frame.tolist(), chunk, chunk_size))
    wanted = [f for f in table.frame.to_numpy()[used_frames(table.flag)].tolist() if f in mine]
    spans = table["span"].to_numpy() if "span" in table else np.zeros(len(table), dtype=np.int64)
    reader = open_frames(frames_dir, frames_table)

    def process(frame: int, rgb: np.ndarray) -> dict:
        row = row_of[frame]
        crop, affine = align_crop(rgb, points[row])
        name = FRAME_NAME.format(frame)
        write_rgb(out_dir / name, crop)
        return {
            "frame": frame,
            "name": name,
            "flag": table.flag.iloc[row],
            "span": int(spans[row]),
            "crop_affine": affine.reshape(6),
            "landmarks_crop": geo.apply_affine(affine, points[row]).reshape(136),
        }

    # Pillow resampling and PNG encoding release the GIL, so threads scale; decoding stays in this thread.
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        work = _bounded_map(pool, process, reader.read(wanted), window=4 * max(1, threads))
        rows = list(tqdm(work, total=len(wanted), desc="crops", unit="frame", leave=False))
    return sorted(rows, key=lambda r: r["frame"])


def run_align_chunk(frames_dir: str | Path, frames_table: str | Path | None, landmarks_path: str | Path,
                    out_dir: str | Path, chunk: int, chunk_size: int, threads: int = 1) -> pd.DataFrame:
    """The crops of one chunk of frames -> ``out_dir`` (the crops and ``crops.parquet``), atomically."""
    with atomic.atomic_directory(out_dir) as tmp_dir:
        rows = crop_frames(frames_dir, frames_table, landmarks_path, tmp_dir, chunk, chunk_size, threads)
        crops = pd.DataFrame(rows, columns=["frame", "name", "flag", "span", "crop_affine", "landmarks_crop"])
        atomic.write_parquet(tmp_dir / CROPS_TABLE, crops)
    log.info("chunk %d: %d crops", chunk, len(crops))
    return crops


def _link(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (a copy where the file system has no hard links)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def gather_chunks(chunk_dirs: list[str | Path], out_dir: Path) -> list[dict]:
    """Link the crops of chunk folders into ``out_dir``; their rows, in frame order."""
    rows = []
    for chunk_dir in chunk_dirs:
        chunk_dir = Path(chunk_dir)
        crops = read_parquet(chunk_dir / CROPS_TABLE, "chunk crop table", "rerun the align_crops jobs")
        for record in crops.to_dict("records"):
            _link(chunk_dir / record["name"], out_dir / record["name"])
            rows.append(record)
    frames = [r["frame"] for r in rows]
    if len(set(frames)) != len(frames):
        raise HfagpError(f"the crop chunks {[str(c) for c in chunk_dirs]} overlap; delete them and rerun")
    return sorted(rows, key=lambda r: r["frame"])


def run_align(
    frames_dir: str | Path,
    landmarks_path: str | Path,
    crops_dir: str | Path,
    cameras_path: str | Path,
    dataset_json: str | Path,
    settings: AlignSettings,
    threads: int = 1,
    frames_table: str | Path | None = None,
    chunk_dirs: list[str | Path] | None = None,
) -> pd.DataFrame:
    """The whole stage (crops made here, or gathered from ``chunk_dirs``); crops, table and dataset.json are
    each written atomically."""
    if settings.pose_solver not in ("morphable", "rigid"):
        raise HfagpError(f"unknown pose_solver '{settings.pose_solver}'; use 'morphable' or 'rigid' in config.yaml")
    pose_landmark_indices(settings.pose_landmarks)
    with atomic.atomic_directory(crops_dir) as tmp_dir:
        if chunk_dirs:
            rows = gather_chunks(chunk_dirs, tmp_dir)
        else:
            rows = crop_frames(frames_dir, frames_table, landmarks_path, tmp_dir, threads=threads)
        if not rows:
            raise HfagpError(f"{landmarks_path} has no frame with a face; nothing to crop")
        landmarks_crop = np.stack([np.asarray(r["landmarks_crop"]) for r in rows]).reshape(-1, 68, 2)
        if settings.pose_solver == "morphable":
            poses = joint_fit_poses(landmarks_crop, settings.fit)
            for row, pose in zip(rows, poses):
                row.update(pose_columns(pose, settings))
        else:
            for row, points in zip(rows, landmarks_crop):
                row.update(camera_row(points, settings))
    columns = ["frame", "name", "flag", "span", "label", "pitch", "yaw", "roll", "radius", "radius_unnormalised",
               "reprojection_error", "crop_affine", "landmarks_crop"]
    cameras = pd.DataFrame(rows)[columns]
    atomic.write_parquet(cameras_path, cameras)
    atomic.write_json(dataset_json, {"labels": [[r["name"], [float(v) for v in r["label"]]] for r in rows]}, indent=None)
    log.info(
        "aligned %d frames: yaw %.1f..%.1f deg, pitch %.1f..%.1f deg, reprojection error median %.2f px",
        len(cameras),
        cameras.yaw.min(),
        cameras.yaw.max(),
        cameras.pitch.min(),
        cameras.pitch.max(),
        cameras.reprojection_error.median(),
    )
    return cameras
