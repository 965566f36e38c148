"""Image regions of the losses and metrics: the face, from a crop's 68 landmarks.

* :func:`hull_mask`: boolean (H, W) mask of the filled convex hull of points
  (the evaluation's face region: :func:`hfagp.evaluate.face_region.face_mask` is this).
* :func:`face_weights`: float32 (S, S) weights in [0, 1] for a training loss
  at S px: the hull of the crop's 68 landmarks (given at the crop's own size),
  grown by :data:`FACE_GROWTH` of the image (the brows' upper edge, the jaw
  line and the cheeks' outline are in, the hair and the background are not)
  and feathered by a Gaussian of :data:`FACE_FEATHER` of the image, so the
  loss has no hard edge.

cv2 is imported lazily; nothing here imports torch.
"""

from __future__ import annotations

import numpy as np

FACE_GROWTH = 6 / 128  # the hull is dilated by this fraction of the image side (6 px at 128)
FACE_FEATHER = 2 / 128  # Gaussian sigma of the soft edge, as a fraction of the image side (2 px at 128)


def hull_mask(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boolean (height, width) mask of the filled convex hull of ``points`` ((N, 2) x, y pixel coordinates).

    The hull vertices are rounded to whole pixels and filled with
    ``cv2.fillConvexPoly`` (boundary pixels included); points outside the
    image are clipped by the fill. Non-finite points give an empty mask.
    """
    import cv2

    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    mask = np.zeros((height, width), dtype=np.uint8)
    if len(points) and np.isfinite(points).all():
        hull = cv2.convexHull(np.round(points).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def face_weights(points: np.ndarray, size: int, source_size: int) -> np.ndarray:
    """Soft face weights (float32 (size, size) in [0, 1]) of 68 landmarks given in a ``source_size`` px crop.

    The landmarks are scaled to ``size``, their hull filled (:func:`hull_mask`),
    dilated by an ellipse of radius ``round(FACE_GROWTH * size)`` and blurred
    with a Gaussian of sigma ``FACE_FEATHER * size``. Landmarks that are not
    68 finite points raise ``ValueError``: a training frame always has them.
    """
    import cv2

    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if points.shape[0] != 68 or not np.isfinite(points).all():
        raise ValueError(f"expected 68 finite landmarks, got {points.shape[0]} points"
                         + ("" if np.isfinite(points).all() else " with missing values"))
    mask = hull_mask(points * (size / float(source_size)), size, size).astype(np.float32)
    radius = int(round(FACE_GROWTH * size))
    if radius > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    sigma = FACE_FEATHER * size
    if sigma > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    return np.clip(mask, 0.0, 1.0).astype(np.float32)
