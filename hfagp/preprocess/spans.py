"""Which frames of a video are used: the spans of frames with a face (stage ``landmarks``).

After detection and gap filling, the runs of consecutive frames with a face
are the candidate spans. ``face_spans="all"`` keeps every run of at least
``min_span_frames`` frames, ``"longest"`` only the longest one, and
``"strict"`` (the behaviour before spans existed) keeps every frame with a
face but stops when too large a fraction of the video has none
(:func:`check_coverage`). Why a frame is not used is recorded per frame and
logged as stretches (:func:`log_spans`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hfagp.errors import HfagpError
from hfagp.logs import get_logger

log = get_logger("landmarks")

SPAN_MODES = ("all", "longest", "strict")
# landmarks.parquet's per-frame flags: detected, filled between detections, no face, a face outside the kept spans.
FLAG_OK, FLAG_INTERPOLATED, FLAG_MISSING, FLAG_DROPPED = "ok", "interpolated", "missing", "dropped"


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, end)`` (end exclusive) of each run of True in a boolean array."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def equal_runs(values) -> list[tuple[int, int]]:
    """``(start, end)`` (end exclusive) of each run of equal consecutive values."""
    values = np.asarray(values)
    if len(values) == 0:
        return []
    starts = np.concatenate([[0], np.flatnonzero(values[1:] != values[:-1]) + 1])
    ends = np.concatenate([starts[1:], [len(values)]])
    return list(zip(starts.tolist(), ends.tolist()))


def face_spans(has_face: np.ndarray, mode: str, min_frames: int) -> tuple[np.ndarray, list[str]]:
    """Which runs of frames with a face are used: (span number per frame, -1 if unused; reason per unused frame).

    ``has_face`` marks frames with a face after gap filling. ``all`` keeps
    every run of at least ``min_frames`` (or of the whole video, when it is
    shorter), ``longest`` the longest run (the first of equals) if it is that
    long, ``strict`` every run.
    """
    if mode not in SPAN_MODES:
        raise HfagpError(f"unknown face_spans mode '{mode}'; use one of {SPAN_MODES} (preprocess.face_spans)")
    has_face = np.asarray(has_face, dtype=bool)
    min_frames = min(min_frames, len(has_face))  # a clip shorter than that can still be used whole
    span = np.full(len(has_face), -1, dtype=np.int64)
    reasons = ["" if f else "no face" for f in has_face]
    candidates = runs(has_face)
    if mode == "longest" and candidates:
        longest = max(candidates, key=lambda r: r[1] - r[0])
        kept = [longest] if longest[1] - longest[0] >= min_frames else []
    elif mode == "all":
        kept = [r for r in candidates if r[1] - r[0] >= min_frames]
    else:
        kept = candidates
    for start, end in candidates:
        if (start, end) in kept:
            span[start:end] = kept.index((start, end))
            continue
        length = end - start
        if length < min_frames:
            why = f"a run of only {length} frames with a face (preprocess.min_span_frames is {min_frames})"
        else:
            longest = max(candidates, key=lambda r: r[1] - r[0])
            why = f"not the longest run of frames with a face (that is frames {longest[0]}-{longest[1] - 1})"
        reasons[start:end] = [why] * length
    return span, reasons


def check_spans(span: np.ndarray, has_face: np.ndarray, source: str, min_frames: int) -> None:
    """Stop with a clear message when no span of frames is usable."""
    if (span >= 0).any():
        return
    if not has_face.any():
        raise HfagpError(
            f"no face found in any of the {len(has_face)} frames of {source}; check that the video shows a face, "
            "or try `preprocess.detector: cnn` / `preprocess.upsample: 1` in config.yaml"
        )
    longest = max((e - s for s, e in runs(has_face)), default=0)
    raise HfagpError(
        f"no run of at least {min(min_frames, len(has_face))} consecutive frames with a face in {source} "
        f"(the longest has {longest}); check that the video shows a face, lower `preprocess.min_span_frames`, "
        "or try `preprocess.detector: cnn` / `preprocess.upsample: 1` in config.yaml"
    )


def log_spans(table: pd.DataFrame) -> None:
    """One log line per kept span and per stretch of unused frames (with the reason)."""
    for start, end in runs(table.span.to_numpy() >= 0):
        log.info("span %d: frames %d-%d (%d frames) used", table.span.iloc[start], table.frame.iloc[start],
                 table.frame.iloc[end - 1], end - start)
    reasons = table.drop_reason.to_numpy()
    for start, end in equal_runs(reasons):
        if reasons[start]:
            log.info("frames %d-%d (%d frames) not used: %s", table.frame.iloc[start], table.frame.iloc[end - 1],
                     end - start, reasons[start])


def check_coverage(table: pd.DataFrame, source: str, max_missing_fraction: float) -> None:
    """Stop with a clear message when too few frames have a face (``face_spans: strict``)."""
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
            "Trim the video (subject `start` / `max_frames`), raise `preprocess.upsample`, raise the threshold, "
            "or let the pipeline keep the spans with a face (`preprocess.face_spans: all` or `longest`)"
        )
