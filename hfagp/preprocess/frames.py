"""Stage ``frames``: decode a video into numbered PNG frames and a frame table.

Outputs (``results/<subject>/``):

* ``frames/%06d.png``: RGB frames, numbered from 0 in output order.
* ``frames.parquet``: one row per written frame with ``index`` (file
  number), ``source_index`` (frame number in the video), ``timestamp``
  (seconds from the start of the video), ``fps`` (rate of the written
  sequence: the source rate unless resampled), ``source_fps``, ``width``,
  ``height``.

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
from hfagp.io.paths import resolve_input
from hfagp.io.video import stream_frame_rate
from hfagp.logs import get_logger

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
    """Frame rate, size and (container-reported) frame count of a video."""
    container = _open_video(Path(path))
    with container:
        stream = container.streams.video[0]
        return {
            "fps": stream_frame_rate(stream),
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "frames": stream.frames or None,
        }


def iter_video_frames(path: str | Path) -> Iterator[tuple[int, float, np.ndarray, float]]:
    """Yield ``(source_index, timestamp_s, rgb_uint8, source_fps)`` for every decoded frame."""
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
                yield decoded, timestamp, frame.to_ndarray(format="rgb24"), source_fps
                decoded += 1
        except av.error.FFmpegError as err:
            raise HfagpError(f"{path}: decoding failed after {decoded} frames ({err}); the file may be corrupt") from err
        if stream.frames and decoded < stream.frames:
            log.warning("%s declares %d frames but only %d could be decoded; the file may be truncated", path, stream.frames, decoded)


def select_frames(
    decoded: Iterator[tuple[int, float, np.ndarray, float]], selection: FrameSelection
) -> Iterator[tuple[int, float, np.ndarray, float, float]]:
    """Apply start / resampling / count to decoded frames.

    Yields ``(source_index, timestamp, rgb, fps, source_fps)``. When resampling
    to ``selection.fps``, output frame k is the latest decoded frame at or
    before ``t0 + k / fps`` (t0: first kept frame); frames are repeated or
    dropped, never blended.
    """
    eps = 1e-6
    limit = selection.max_frames
    written = 0
    target = None
    previous = None
    for source_index, timestamp, rgb, source_fps in decoded:
        if limit is not None and written >= limit:
            return
        if timestamp + eps < selection.start:
            continue
        if selection.fps is None:
            yield source_index, timestamp, rgb, source_fps, source_fps
            written += 1
            continue
        target = timestamp if target is None else target
        while previous is not None and target < timestamp - eps:
            yield previous[0], target, previous[2], selection.fps, source_fps
            written += 1
            if limit is not None and written >= limit:
                return
            target += 1.0 / selection.fps
        previous = (source_index, timestamp, rgb, source_fps)
    # The last decoded frame covers the output times up to its own timestamp.
    while previous is not None and target <= previous[1] + eps and (limit is None or written < limit):
        yield previous[0], target, previous[2], selection.fps, previous[3]
        written += 1
        target += 1.0 / selection.fps


def extract_frames(video: str | Path, frames_dir: str | Path, table_path: str | Path, selection: FrameSelection) -> pd.DataFrame:
    """Decode ``video`` into ``frames_dir`` and write ``table_path``; both atomically."""
    video = resolve_input(video, what="video")
    rows = []
    with atomic.atomic_directory(frames_dir) as tmp_dir:
        frames = select_frames(iter_video_frames(video), selection)
        for source_index, timestamp, rgb, fps, source_fps in tqdm(frames, desc="frames", unit="frame", leave=False):
            index = len(rows)
            write_rgb(tmp_dir / FRAME_NAME.format(index), rgb)
            rows.append(
                {
                    "index": index,
                    "source_index": source_index,
                    "timestamp": timestamp,
                    "fps": fps,
                    "source_fps": source_fps,
                    "width": rgb.shape[1],
                    "height": rgb.shape[0],
                }
            )
        if not rows:
            raise HfagpError(
                f"no frames decoded from {video} (start={selection.start} s); check the file and the subject's `start`"
            )
    table = pd.DataFrame(rows)
    atomic.write_parquet(table_path, table)
    log.info("wrote %d frames (%.3f fps, %dx%d) from %s", len(table), table.fps[0], table.width[0], table.height[0], video)
    return table
