"""Evaluation protocols: at what size, in which colour space and over which region a pair is compared.

Talking-head and avatar papers compute the "same" metric in ways that move it
by several dB (full frame or head only, RGB or luma, 512 px or the render's own
size), so a number means little without its protocol. One :class:`Protocol`
is chosen per run (``evaluation:`` in config.yaml, ``hfagp evaluate
--resolution/--region/--color``) and is written into ``metrics.json`` and named
in ``results/paper_table.md``.

* **resolution** (default 512): both images are brought to this square size
  before anything is measured; a render of another size is resized with
  bicubic interpolation when it is smaller (the demo's 128 px renders) and
  area interpolation when it is larger, the 512 px ground-truth crop likewise.
  ``"render"`` keeps the render's own size and area-resizes the ground truth
  to it (this project's protocol before there was a choice).
* **region** (default ``full``), applied to PSNR, SSIM, L1 and LPIPS alike,
  which are then computed over the whole frame:

  - ``full``: the whole aligned crop, as NeRFace, RAD-NeRF/ER-NeRF "full" and
    HFA-GP report;
  - ``head``: the ground truth is pasted into the render outside the head mask
    (the "head only" numbers of the ER-NeRF family, which paste ground-truth
    torso and background): only the head is the avatar's;
  - ``face``: both images are white outside the face mask (the masked
    protocol of PointAvatar-style evaluation, with the face hull as the mask).

  The masks come from the ground truth's dlib 68 landmarks at the evaluation
  resolution: **face** = the filled convex hull of the 68 points
  (:func:`hfagp.evaluate.face_region.face_mask`); **head** = that hull grown up
  to an estimated hairline: the ten brow points (17-26) moved away from the
  nose base (point 33) by the brow-to-nose-base distance (the rule of thirds
  of facial proportions). Hair, ears and neck are outside both masks. A frame
  whose ground truth has no face has no mask: under ``head``/``face`` its
  region metrics are missing (with that reason), never computed on the full
  frame.
* **color** (default ``rgb``): ``rgb`` measures the three channels in [0, 1];
  ``y`` measures the BT.601 studio-swing luma of MATLAB's ``rgb2ycbcr``
  (``(16 + 65.481 R + 128.553 G + 24.966 B) / 255`` for RGB in [0, 1]), which
  super-resolution papers (basicsr's ``test_y_channel``) use. LPIPS always
  takes the RGB images of the region.

The face PSNR column (``psnr_face``: MSE over the face-hull pixels only) and
the landmark metrics (AKD, LMD, lip opening, CSIM) are measured on the
un-composited images at the evaluation resolution, whatever the region.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

REGIONS = ("full", "head", "face")
COLORS = ("rgb", "y")
BROWS = slice(17, 27)
NOSE_BASE = 33
# MATLAB rgb2ycbcr (BT.601, studio swing) luma for RGB in [0, 1], on the 0..255 scale.
LUMA_WEIGHTS = np.array([65.481, 128.553, 24.966])
LUMA_OFFSET = 16.0
REGION_TEXT = {
    "full": "full frame",
    "head": "head only (ground truth pasted outside the head mask)",
    "face": "face only (both images white outside the face hull)",
}


@dataclass(frozen=True)
class Protocol:
    """How a (render, ground truth) pair is compared; see the module docstring."""

    resolution: int | str = 512
    region: str = "full"
    color: str = "rgb"

    def __post_init__(self):
        if self.region not in REGIONS:
            raise ValueError(f"evaluation region {self.region!r} is not one of {', '.join(REGIONS)}")
        if self.color not in COLORS:
            raise ValueError(f"evaluation color {self.color!r} is not one of {', '.join(COLORS)}")
        if self.resolution != "render" and (not isinstance(self.resolution, int) or self.resolution < 16):
            raise ValueError(f"evaluation resolution {self.resolution!r} must be an integer >= 16 or 'render'")

    def size(self, render_shape: tuple[int, int]) -> tuple[int, int]:
        """(height, width) both images are compared at, for renders of ``render_shape``."""
        if self.resolution == "render":
            return int(render_shape[0]), int(render_shape[1])
        return int(self.resolution), int(self.resolution)

    @property
    def needs_mask(self) -> bool:
        """Whether the region metrics need the ground truth's landmarks."""
        return self.region != "full"

    def describe(self, size: tuple[int, int] | None = None, color: str | None = None) -> str:
        """One line naming the protocol, e.g. ``512 px, RGB [0,1], full frame`` (``color`` overrides the protocol's)."""
        if size is not None:
            pixels = f"{size[1]}x{size[0]} px" if size[0] != size[1] else f"{size[0]} px"
        else:
            pixels = "render resolution" if self.resolution == "render" else f"{self.resolution} px"
        channels = "RGB [0,1]" if (color or self.color) == "rgb" else "Y (BT.601 studio swing) [0,1]"
        return f"{pixels}, {channels}, {REGION_TEXT[self.region]}"

    def as_dict(self) -> dict:
        return asdict(self)


def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """float [0, 1] (H, W, 3) -> (height, width, 3): bicubic when enlarging, area when shrinking, clipped to [0, 1]."""
    import cv2

    if image.shape[:2] == (height, width):
        return np.asarray(image, dtype=np.float64)
    enlarging = height > image.shape[0] or width > image.shape[1]
    resized = cv2.resize(image.astype(np.float32), (width, height),
                         interpolation=cv2.INTER_CUBIC if enlarging else cv2.INTER_AREA)
    return np.clip(resized.astype(np.float64), 0.0, 1.0)


def head_points(points: np.ndarray) -> np.ndarray:
    """The 68 landmarks plus the brows raised to the estimated hairline ((78, 2); see the module docstring)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if points.shape[0] != 68:
        raise ValueError(f"expected 68 landmarks, got {points.shape[0]}")
    brows = points[BROWS]
    lift = brows.mean(axis=0) - points[NOSE_BASE]  # nose base -> brow centre: "up" along the face, any roll
    return np.vstack([points, brows + lift])


def region_mask(points_truth: np.ndarray | None, region: str, height: int, width: int) -> np.ndarray | None:
    """Boolean mask of ``region`` from the ground truth's landmarks; None for ``full`` or without landmarks."""
    from hfagp.evaluate.face_region import face_mask

    if region == "full" or points_truth is None:
        return None
    points = head_points(points_truth) if region == "head" else points_truth
    return face_mask(points, height, width)


def apply_region(render: np.ndarray, truth: np.ndarray, region: str,
                 mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The pair the region metrics see (float [0, 1] (H, W, 3) images); ``mask`` is needed unless ``full``."""
    if region == "full":
        return render, truth
    if mask is None:
        raise ValueError(f"region {region!r} needs a mask")
    inside = mask[..., None]
    if region == "head":
        return np.where(inside, render, truth), truth
    return np.where(inside, render, 1.0), np.where(inside, truth, 1.0)


def luma(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in [0, 1] -> (H, W, 1) MATLAB ``rgb2ycbcr`` Y in [0, 1] (16/255 .. 235/255)."""
    image = np.asarray(image, dtype=np.float64)
    return ((image @ LUMA_WEIGHTS + LUMA_OFFSET) / 255.0)[..., None]


def to_color(image: np.ndarray, color: str) -> np.ndarray:
    """The channels PSNR, SSIM and L1 are computed on: the RGB image itself, or its luma as one channel."""
    return luma(image) if color == "y" else np.asarray(image, dtype=np.float64)
