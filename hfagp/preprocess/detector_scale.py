"""The face detector's scale, chosen from the video: how big the faces are relative to the frame.

dlib's HOG detector scans an 80x80 window over an image pyramid, so its cost
grows with the image area while a face needs only about 80 px to be found.
One global ``upsample`` (1, which the 176x144 demo needs) made HOG about 4x
slower than needed on ordinary 360p videos and far slower on 1080p. Instead,
the frames stage looks at a few evenly spaced frames (:class:`ProbeSampler`),
measures the faces there (:func:`probe_faces`), and the landmark jobs detect on
frames resized so that the small faces of that probe measure about
:data:`TARGET_FACE_PX` (:func:`choose_scale`); videos whose faces are too small
to find at full resolution get dlib's pyramid upsampling instead, as before.
Landmarks are always placed on the full-resolution frame; only the box search
runs on the resized one.

``preprocess.upsample`` set to a number keeps the old behaviour (full
resolution, that many pyramid upsamplings) for every frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

PROBE_WIDTH = 640  # the first probe level: frames resized to at most this width
TARGET_FACE_PX = 120  # small faces of the probe measure this after resizing (HOG finds about 80 px)
PROBE_FRAMES = 32  # at most this many probe frames (at least half of it on long videos)


@dataclass(frozen=True)
class DetectorScale:
    """How every frame is searched: resized by ``scale`` (<= 1), then ``upsample`` pyramid doublings."""

    scale: float = 1.0
    upsample: int = 1
    reason: str = ""

    def describe(self) -> str:
        """One line for the log."""
        return f"detector scale {self.scale:g}, upsample {self.upsample} ({self.reason})"


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """The grey image HOG sees."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def resize_image(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` (grey or colour) resized by ``scale`` (area filter); unchanged at 1."""
    if scale >= 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class ProbeSampler:
    """Keeps between half of and ``limit`` evenly spaced grey frames of a stream of unknown length.

    Frame ``i`` is kept while ``i`` is a multiple of the current step; when more
    than ``limit`` frames are kept the step doubles and every other one goes.
    The result depends only on the frame count, so it is reproducible.
    """

    def __init__(self, limit: int = PROBE_FRAMES):
        self.limit, self.step = limit, 1
        self.kept: dict[int, np.ndarray] = {}

    def offer(self, index: int, rgb: np.ndarray) -> None:
        """Consider frame ``index`` (frames must come in increasing order)."""
        if index % self.step:
            return
        self.kept[index] = to_gray(rgb)
        if len(self.kept) > self.limit:
            self.step *= 2
            self.kept = {i: g for i, g in self.kept.items() if i % self.step == 0}


def _face_heights(detector, grays: list[np.ndarray], scale: float, upsample: int) -> list[float | None]:
    """Height (source pixels) of the largest face found in each grey frame, None where none is found."""
    heights = []
    for gray in grays:
        rects, _, _ = detector.run(resize_image(gray, scale), upsample, 0.0)
        heights.append(max((r.bottom() - r.top()) / scale for r in rects) if rects else None)
    return heights


def probe_faces(frames: dict[int, np.ndarray]) -> dict:
    """Face sizes on probe frames ``{frame: grey image}``, at the cheapest search that finds them all.

    Searches, cheapest first: width resized to :data:`PROBE_WIDTH`, full
    resolution, full resolution with one pyramid upsampling. A finer search
    runs only while the faces found so far are near the detector's limit
    (under :data:`TARGET_FACE_PX` in the searched image), so a finer one could
    find more; of the searches run, the one that found faces on the most probe
    frames is kept (the cheapest of equals).
    """
    from hfagp.preprocess.dlib_models import hog_detector

    detector = hog_detector()
    order = sorted(frames)
    grays = [frames[i] for i in order]
    width = grays[0].shape[1] if grays else 0
    levels = [(min(1.0, PROBE_WIDTH / width) if width else 1.0, 0), (1.0, 0), (1.0, 1)]
    searches: list[dict] = []
    for scale, upsample in dict.fromkeys(levels):
        heights = _face_heights(detector, grays, scale, upsample)
        searches.append({"scale": float(scale), "upsample": int(upsample),
                         "face_heights": [None if h is None else float(h) for h in heights]})
        found = [h for h in heights if h is not None]
        if found and np.percentile(found, 25) * scale * 2**upsample >= TARGET_FACE_PX:
            break
    best = max(searches, key=lambda s: sum(h is not None for h in s["face_heights"]))
    return {"frames": [int(i) for i in order], **best, "searches": searches}


def choose_scale(probe: dict | None) -> DetectorScale:
    """The scale of every frame's face search, from a :func:`probe_faces` record."""
    found = [h for h in (probe or {}).get("face_heights", []) if h is not None]
    if not found:
        return DetectorScale(1.0, 1, "no face on the probe frames: full resolution with upsampling, as for small faces")
    if probe["upsample"] >= 1:
        return DetectorScale(1.0, probe["upsample"], f"faces of {np.median(found):.0f} px need upsampling")
    small = float(np.percentile(found, 25))
    scale = min(1.0, math.ceil(100 * TARGET_FACE_PX / small) / 100)
    return DetectorScale(scale, 0, f"faces of {small:.0f} px (25th percentile of {len(found)} probe frames)")
