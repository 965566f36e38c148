"""Face-region measures of the evaluate stage: face PSNR, inner-lip opening, baselines, novel-view faces.

* **Face PSNR** (:func:`psnr_face`): PSNR over the pixels inside the filled
  convex hull (:func:`face_mask`) of the ground truth's 68 dlib landmarks, at
  the render resolution, all three channels, images in [0, 1]; NaN where the
  ground truth has no face.
* **Inner-lip opening** (:func:`lip_opening`): mean distance of the 0-based
  landmark pairs (61, 67), (62, 66), (63, 65), divided by the distance between
  the outer eye corners (36, 45) of the same image (scale free).
  :func:`lip_correlation` is the Pearson correlation of the render's and the
  ground truth's openings over the frames where both exist (``None`` with a
  reason below 3 frames or when either sequence is constant).
* **Baseline** (:func:`last_train_frames`, :func:`mean_image`,
  :func:`baseline_summary`): the mean image of the last training crops, scored
  against every test ground truth with the same PSNR functions, says how much
  of a score a still image already gets.
* **Novel-view faces** (:func:`novel_faces`): how many novel-view frames dlib
  finds a face in (the detector settings of the test frames).

cv2 is imported lazily; nothing here imports torch.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
OUTER_EYE_CORNERS = (36, 45)
MIN_CORRELATION_FRAMES = 3
BASELINE_FRAMES = 10


def face_mask(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boolean (height, width) mask of the filled convex hull of ``points`` ((N, 2) x, y pixel coordinates).

    The hull vertices are rounded to whole pixels and filled with
    ``cv2.fillConvexPoly`` (boundary pixels included); points outside the
    image are clipped by the fill.
    """
    from hfagp.losses.regions import hull_mask  # one hull fill for the metric and the training loss

    return hull_mask(points, height, width)


def psnr_masked(a: np.ndarray, b: np.ndarray, mask: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR (dB) of the masked pixels, all channels: MSE over ``a[mask] - b[mask]``; NaN for an empty mask."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.shape[:2] != mask.shape:
        raise ValueError(f"images {a.shape}, {b.shape} and mask {mask.shape} differ in size")
    if not mask.any():
        return math.nan
    mse = float(np.mean((a[mask] - b[mask]) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def psnr_face(render: np.ndarray, truth: np.ndarray, points_truth: np.ndarray | None) -> float:
    """PSNR inside the convex hull of the ground truth's landmarks; NaN when the ground truth has no face."""
    if points_truth is None:
        return math.nan
    height, width = np.shape(truth)[:2]
    return psnr_masked(render, truth, face_mask(points_truth, height, width))


def lip_opening(points: np.ndarray | None) -> float:
    """Inner-lip opening of 68 landmarks (see the module docstring); NaN when missing or the eyes coincide."""
    if points is None:
        return math.nan
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if points.shape[0] != 68:
        raise ValueError(f"expected 68 landmarks, got {points.shape[0]}")
    eyes = float(np.linalg.norm(points[OUTER_EYE_CORNERS[0]] - points[OUTER_EYE_CORNERS[1]]))
    if not math.isfinite(eyes) or eyes == 0.0:
        return math.nan
    gaps = [np.linalg.norm(points[i] - points[j]) for i, j in INNER_LIP_PAIRS]
    return float(np.mean(gaps)) / eyes


def lip_correlation(render: list[float], truth: list[float]) -> dict:
    """Pearson correlation of the openings over the frames where both are finite.

    ``{"value": float | None, "frames": n, "reason": None | str}``; the value is
    None below :data:`MIN_CORRELATION_FRAMES` frames or when either sequence
    has zero variance.
    """
    a, b = np.asarray(render, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    a, b = a[both], b[both]
    frames = int(both.sum())
    if frames < MIN_CORRELATION_FRAMES:
        reason = (f"only {frames} test frames with landmarks on both render and ground truth "
                  f"(at least {MIN_CORRELATION_FRAMES} needed)")
        return {"value": None, "frames": frames, "reason": reason}
    constant = [name for name, x in (("render", a), ("ground truth", b)) if x.max() == x.min()]
    if constant:
        return {"value": None, "frames": frames,
                "reason": f"the {' and '.join(constant)} lip opening does not vary over the {frames} frames"}
    return {"value": float(np.corrcoef(a, b)[0, 1]), "frames": frames, "reason": None}


def last_train_frames(train: list[int], crops: Path, count: int = BASELINE_FRAMES) -> list[int]:
    """The ``count`` largest training frame numbers that have a crop (fewer if fewer exist), ascending."""
    from hfagp.evaluate.scoring import FRAME_NAME

    with_crop = [f for f in sorted(set(train)) if (Path(crops) / FRAME_NAME.format(f)).is_file()]
    return with_crop[-count:] if count > 0 else []


def mean_image(paths: list[Path], height: int, width: int) -> np.ndarray:
    """Mean of the images resized like the ground truth (float64 [0, 1], (height, width, 3); area when shrinking)."""
    from hfagp.evaluate.protocol import resize_to
    from hfagp.io.images import read_rgb

    total = np.zeros((height, width, 3), dtype=np.float64)
    for path in paths:
        total += resize_to(read_rgb(path).astype(np.float64) / 255.0, height, width)
    return total / len(paths)


def baseline_summary(test_rows: list[dict], frames: list[int]) -> dict:
    """``{"psnr", "psnr_face", "face_frames", "frames"}`` of the baseline over the test rows.

    The rows hold ``baseline_psnr`` and ``baseline_psnr_face`` (the baseline
    image scored like a render, see ``scoring.frame_metrics``); ``psnr`` is the
    mean over the test frames, ``psnr_face`` over those with a ground-truth face
    (``face_frames`` of them), finite values only; None without ``frames`` (no
    training crop) or without any value.
    """
    from hfagp.evaluate import metrics

    if not frames:
        return {"psnr": None, "psnr_face": None, "face_frames": 0, "frames": []}
    faces = [row["baseline_psnr_face"] for row in test_rows if row["face_gt"]]
    return {
        "psnr": metrics.summarize(row["baseline_psnr"] for row in test_rows)["mean"],
        "psnr_face": metrics.summarize(faces)["mean"],
        "face_frames": len(faces),
        "frames": [int(f) for f in frames],
    }


def novel_faces(found: list[bool]) -> dict:
    """``{"detected", "frames", "fraction"}`` of the novel-view face detections (fraction None without frames)."""
    detected, frames = int(sum(bool(f) for f in found)), len(found)
    return {"detected": detected, "frames": frames, "fraction": detected / frames if frames else None}
