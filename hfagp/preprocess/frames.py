"""Stage ``frames``: index a video's frames (and optionally keep them as PNG files).

Outputs (``results/<subject>/``):

* ``frames/source.json``: the video the frames come from, the storage, and the
  face sizes seen on a few probe frames (:mod:`hfagp.preprocess.frame_store`,
  :mod:`hfagp.preprocess.detector_scale`).
* ``frames/%06d.png``: RGB frames, numbered from 0 in output order, only with
  ``storage="png"``. By default (``"video"``) no pixels are stored: later
  stages decode the frames they need from the video again, so a 1080p video
  costs a few bytes per frame here instead of several MB.
* ``frames.parquet``: one row per frame with ``index`` (frame number),
  ``source_index`` (position of the source frame in the video's decode
  order), ``source_pts`` (its timestamp in stream time-base units; null when
  the stream has none), ``timestamp`` (seconds from the start of the video),
  ``fps`` (rate of the sequence: the source rate unless resampled),
  ``source_fps``, ``width``, ``height`` (of the upright frame), ``rotation``
  (degrees the decoded frame was turned counter-clockwise to stand upright:
  0, 90, 180 or 270).

Frames are turned upright as the video's display matrix says (portrait phone
videos are stored sideways; :mod:`hfagp.io.orientation`), here and wherever a
later stage decodes them again.

Decoding uses PyAV (FFmpeg libraries inside the wheel; no system ffmpeg).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from tqdm import tqdm

from hfagp.errors import HfagpError
from hfagp.io import atomic
from hfagp.io.images import FRAME_NAME, write_rgb
from hfagp.io.orientation import quarter_turns, upright_rgb
from hfagp.io.paths import resolve_input
from hfagp.io.video import stream_frame_rate
from hfagp.logs import get_logger
from hfagp.preprocess.detector_scale import ProbeSampler, probe_faces
from hfagp.preprocess.frame_store import STORAGES, write_source

log = get_logger("frames")


@dataclass(frozen=True)
class FrameSelection:
    """Which decoded frames to keep: start time, optional resampling and count."""

    start: float = 0.0
    fps: float | None = None
    max_frames: int | None = None


def _open_video(path: Path):
    import av

    try:
        container = av.open(str(path))
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as err:
        raise HfagpError(f"cannot read video {path}: {err}; is it a valid video file?") from err
    if not container.streams.video:
        container.close()
        raise HfagpError(f"{path} has no video stream; point the subject's `video` in config.yaml at a video file")
    return container


def video_info(path: str | Path) -> dict:
    """Frame rate, stored size (before any display rotation) and (container-reported) frame count of a video."""
    container = _open_video(Path(path))
    with container:
        stream = container.streams.video[0]
        return {
            "fps": stream_frame_rate(stream),
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "frames": stream.frames or None,
        }


@dataclass
class DecodedFrame:
    """One decoded video frame; its pixels are converted to RGB only when asked for."""

    source_index: int  # position in decode order
    timestamp: float  # seconds
    pts: int | None  # stream time-base units
    source_fps: float
    frame: object  # av.VideoFrame
    video: Path  # named in errors

    def quarter_turns(self) -> int:
        """Counter-clockwise quarter turns its display matrix asks for (:func:`hfagp.io.orientation.quarter_turns`)."""
        return quarter_turns(self.frame, self.video)

    def rgb(self) -> np.ndarray:
        """The frame as RGB uint8 (H, W, 3), upright."""
        return upright_rgb(self.frame, self.video)


def iter_video_frames(path: str | Path) -> Iterator[DecodedFrame]:
    """Yield every decoded frame of the first video stream, in presentation order."""
    import av

    path = Path(path)
    container = _open_video(path)
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        source_fps = stream_frame_rate(stream)
        if not source_fps:
            raise HfagpError(f"{path}: the video stream has no frame rate; re-encode it with a constant frame rate")
        decoded = 0
        try:
            for frame in container.decode(stream):
                timestamp = float(frame.time) if frame.time is not None else decoded / source_fps
                yield DecodedFrame(decoded, timestamp, frame.pts, source_fps, frame, path)
                decoded += 1
        except av.error.FFmpegError as err:
            raise HfagpError(f"{path}: decoding failed after {decoded} frames ({err}); the file may be corrupt") from err
        if stream.frames and decoded < stream.frames:
            log.warning("%s declares %d frames but only %d could be decoded; the file may be truncated", path, stream.frames, decoded)


def select_frames(decoded: Iterator[DecodedFrame], selection: FrameSelection) -> Iterator[tuple[DecodedFrame, float, float]]:
    """Apply start / resampling / count to decoded frames.

    Yields ``(decoded_frame, timestamp, fps)``. When resampling to
    ``selection.fps``, output frame k is the latest decoded frame at or before
    ``t0 + k / fps`` (t0: first kept frame); frames are repeated or dropped,
    never blended.
    """
    eps = 1e-6
    limit = selection.max_frames
    written = 0
    target = None
    previous = None
    for current in decoded:
        if limit is not None and written >= limit:
            return
        if current.timestamp + eps < selection.start:
            continue
        if selection.fps is None:
            yield current, current.timestamp, current.source_fps
            written += 1
            continue
        target = current.timestamp if target is None else target
        while previous is not None and target < current.timestamp - eps:
            yield previous, target, selection.fps
            written += 1
            if limit is not None and written >= limit:
                return
            target += 1.0 / selection.fps
        previous = current
    # The last decoded frame covers the output times up to its own timestamp.
    while previous is not None and target <= previous.timestamp + eps and (limit is None or written < limit):
        yield previous, target, selection.fps
        written += 1
        target += 1.0 / selection.fps


def extract_frames(
    video: str | Path, frames_dir: str | Path, table_path: str | Path, selection: FrameSelection, storage: str = "video"
) -> pd.DataFrame:
    """Index ``video`` into ``table_path`` and ``frames_dir`` (PNG files only with ``storage="png"``); atomically."""
    if storage not in STORAGES:
        raise HfagpError(f"unknown frame storage '{storage}'; use one of {STORAGES} (preprocess.frame_storage)")
    video = resolve_input(video, what="video")
    rows = []
    probe = ProbeSampler()
    with atomic.atomic_directory(frames_dir) as tmp_dir:
        frames = select_frames(iter_video_frames(video), selection)
        for decoded, timestamp, fps in tqdm(frames, desc="frames", unit="frame", leave=False):
            index = len(rows)
            rgb = None
            if storage == "png" or index % probe.step == 0:
                rgb = decoded.rgb()
                probe.offer(index, rgb)
            if storage == "png":
                write_rgb(tmp_dir / FRAME_NAME.format(index), rgb)
            turns = decoded.quarter_turns()
            width, height = decoded.frame.width, decoded.frame.height
            if turns % 2:
                width, height = height, width
            rows.append(
                {
                    "index": index,
                    "source_index": decoded.source_index,
                    "source_pts": decoded.pts,
                    "timestamp": timestamp,
                    "fps": fps,
                    "source_fps": decoded.source_fps,
                    "width": width,
                    "height": height,
                    "rotation": 90 * turns,
                }
            )
        if not rows:
            raise HfagpError(
                f"no frames decoded from {video} (start={selection.start} s); check the file and the subject's `start`"
            )
        face_probe = probe_faces(probe.kept)
        write_source(tmp_dir, storage, video, len(rows), face_probe)
    table = pd.DataFrame(rows)
    table["source_pts"] = table["source_pts"].astype("Int64")
    atomic.write_parquet(table_path, table)
    found = sum(h is not None for h in face_probe["face_heights"])
    log.info("indexed %d frames (%.3f fps, %dx%d, storage %s) from %s; a face on %d of %d probe frames",
             len(table), table.fps[0], table.width[0], table.height[0], storage, video, found, len(face_probe["frames"]))
    if table.rotation.any():
        log.info("%s is stored turned: its display matrix turns the frames by %s degrees counter-clockwise, "
                 "and every stage reads them upright", video, sorted(set(table.rotation.tolist())))
    return table
