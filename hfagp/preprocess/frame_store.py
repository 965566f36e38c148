"""Where a subject's frames live: decoded from its video on demand, or PNG files.

The frames stage keeps no full-resolution copy of a video by default
(``storage: video``): ``frames/`` then holds only ``source.json``, which names
the video file, and every stage that needs pixels (landmarks, align) decodes
the frames it needs from the video again. ``frames.parquet`` maps each frame
number to the decoded source frame (``source_index``: its position in decode
order; ``source_pts``: its presentation timestamp in stream time-base units),
so a reader seeks to the key frame before the first frame it wants and
decodes forward from there, which gives the same pixels as decoding from the
start (the frames a chunk job reads are bitwise those of a whole-video run; the
tests check this). Frames are turned upright as the video's display matrix
says, as the frames stage does (:mod:`hfagp.io.orientation`). A stream without timestamps, or a seek that misses, falls
back to decoding from the start and counting frames.

``storage: png`` keeps today's lossless ``frames/%06d.png`` files (several MB
per 1080p frame); imported datasets (NeRFace, AD-NeRF) write PNG frames too, and a
``frames/`` folder without ``source.json`` is read as PNG files.

``source.json``::

    {"storage": "video" | "png", "video": "/abs/path.mp4", "video_bytes": N,
     "frames": F, "face_probe": {...} | null}

``face_probe`` (see :mod:`hfagp.preprocess.detector_scale`) records the face sizes
the frames stage saw on a few evenly spaced frames, so the landmark jobs choose
one detector scale for the whole video without decoding it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from hfagp.errors import HfagpError
from hfagp.io import atomic
from hfagp.io.artifacts import read_json
from hfagp.io.images import frame_path, read_rgb
from hfagp.io.orientation import upright_rgb
from hfagp.logs import get_logger

log = get_logger("frames")

SOURCE_FILE = "source.json"
STORAGES = ("video", "png")


def write_source(frames_dir: str | Path, storage: str, video: Path, frames: int, face_probe: dict | None) -> None:
    """Write ``frames_dir/source.json`` (see the module docstring)."""
    if storage not in STORAGES:
        raise HfagpError(f"unknown frame storage '{storage}'; use one of {STORAGES} (preprocess.frame_storage)")
    record = {
        "storage": storage,
        "video": str(Path(video).resolve()),
        "video_bytes": Path(video).stat().st_size,
        "frames": int(frames),
        "face_probe": face_probe,
    }
    atomic.write_json(Path(frames_dir) / SOURCE_FILE, record)


def read_source(frames_dir: str | Path) -> dict | None:
    """``source.json`` of a frames folder, or None for a plain folder of PNG frames."""
    path = Path(frames_dir) / SOURCE_FILE
    if not path.exists():
        return None
    record = read_json(path, "frame source", "rerun the frames stage (hfagp frames)")
    if not isinstance(record, dict) or record.get("storage") not in STORAGES:
        raise HfagpError(f"{path} is not a frame source record; delete {Path(frames_dir)} and rerun the frames stage")
    return record


@dataclass
class PngFrames:
    """Frames stored as ``frames/%06d.png``."""

    frames_dir: Path

    def read(self, frames: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame, rgb)`` for each requested frame number, in the order given."""
        for frame in frames:
            yield int(frame), read_rgb(frame_path(self.frames_dir, int(frame)))


@dataclass
class VideoFrames:
    """Frames decoded on demand from the subject's video (``storage: video``)."""

    video: Path
    source_index: np.ndarray  # (F,) decode-order position of each frame's source frame
    source_pts: np.ndarray | None  # (F,) its timestamp (stream time base), None when the stream has none

    def read(self, frames: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame, rgb)`` for each requested frame number, ascending (a frame shown twice after
        resampling is decoded once)."""
        wanted = sorted({int(f) for f in frames})
        if not wanted:
            return
        if wanted[0] < 0 or wanted[-1] >= len(self.source_index):
            raise HfagpError(f"frame {wanted[-1] if wanted[-1] >= 0 else wanted[0]} is not in the frame table of "
                             f"{self.video} ({len(self.source_index)} frames); rerun the frames stage")
        remaining = set(wanted)
        if self.source_pts is not None:
            for frame, rgb in self._decode(wanted, by_pts=True, seek=True):
                remaining.discard(frame)
                yield frame, rgb
        if remaining:
            if self.source_pts is not None:
                log.warning("%s: seeking missed %d frame(s) (first %d); decoding from the start instead",
                            self.video, len(remaining), min(remaining))
            for frame, rgb in self._decode(sorted(remaining), by_pts=False, seek=False):
                remaining.discard(frame)
                yield frame, rgb
        if remaining:
            raise HfagpError(
                f"{self.video}: frames {sorted(remaining)[:10]} of the frame table could not be decoded again; "
                "the video changed since the frames stage ran: rerun it (delete results/<subject>/frames)"
            )

    def _decode(self, wanted: list[int], by_pts: bool, seek: bool) -> Iterator[tuple[int, np.ndarray]]:
        """Decode the source frames behind ``wanted``, matched by timestamp or by decode-order position."""
        import av

        keys = self.source_pts if by_pts else self.source_index
        frames_of: dict[int, list[int]] = {}
        for frame in wanted:
            frames_of.setdefault(int(keys[frame]), []).append(frame)
        last = max(frames_of)
        try:
            container = av.open(str(self.video))
        except (av.error.FFmpegError, OSError) as err:
            raise HfagpError(f"cannot reopen video {self.video} ({err}); it must stay where the frames stage found "
                             "it (or rerun the frames stage with preprocess.frame_storage: png)") from err
        with container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if seek:
                container.seek(min(frames_of), stream=stream, backward=True, any_frame=False)
            position = 0
            try:
                for decoded in container.decode(stream):
                    key = decoded.pts if by_pts else position
                    position += 1
                    if key is None:
                        return
                    if key in frames_of:
                        rgb = upright_rgb(decoded, self.video)
                        for frame in frames_of.pop(key):
                            yield frame, rgb
                    if key >= last or not frames_of:
                        return
            except av.error.FFmpegError as err:
                raise HfagpError(f"{self.video}: decoding failed ({err}); the file may have changed or be corrupt: "
                                 "rerun the frames stage") from err


def open_frames(frames_dir: str | Path, frames_table: str | Path | None = None) -> PngFrames | VideoFrames:
    """A reader of a subject's frames: the video behind ``source.json`` or the PNG files."""
    frames_dir = Path(frames_dir)
    source = read_source(frames_dir)
    if source is None or source["storage"] == "png":
        return PngFrames(frames_dir)
    video = Path(source["video"])
    if not video.is_file():
        raise HfagpError(f"the video {video} that {frames_dir / SOURCE_FILE} decodes frames from is gone; put it back "
                         "or rerun the frames stage")
    if video.stat().st_size != source["video_bytes"]:
        raise HfagpError(f"{video} changed since the frames stage read it ({source['video_bytes']} bytes then, "
                         f"{video.stat().st_size} now); rerun the frames stage")
    if frames_table is None:  # the results/<subject>/ layout: frames/ beside frames.parquet
        frames_table = frames_dir.with_name("frames.parquet")
        if not frames_table.exists():
            raise HfagpError(f"{frames_dir} holds no frames of its own (storage: video): pass its frames.parquet "
                             "(--frames-table)")
    from hfagp.io.tables import read_frames_table

    table = read_frames_table(frames_table)
    if len(table) != source["frames"] or "source_index" not in table:
        raise HfagpError(f"{frames_table} does not match {frames_dir / SOURCE_FILE} ({len(table)} rows, "
                         f"{source['frames']} recorded); rerun the frames stage")
    pts = table["source_pts"] if "source_pts" in table else None
    has_pts = pts is not None and bool(pts.notna().all())
    return VideoFrames(video, table["source_index"].to_numpy(np.int64),
                       pts.to_numpy(np.int64) if has_pts else None)


def chunk_frames(frames: list[int], chunk: int, chunk_size: int) -> list[int]:
    """The frames of chunk ``chunk`` when a table's frames are cut into chunks of ``chunk_size`` rows
    (``chunk_size`` 0: one chunk of all of them)."""
    if chunk_size <= 0:
        if chunk != 0:
            raise HfagpError(f"chunk {chunk} asked for, but a chunk size of 0 means one chunk (number 0)")
        return list(frames)
    count = max(1, -(-len(frames) // chunk_size))
    if not 0 <= chunk < count:
        raise HfagpError(f"chunk {chunk} is outside the {count} chunks of {chunk_size} of {len(frames)} frames")
    return list(frames[chunk * chunk_size : (chunk + 1) * chunk_size])


def chunk_count(frames: int, chunk_size: int) -> int:
    """How many chunks of ``chunk_size`` rows cover ``frames`` rows (0: one chunk)."""
    return 1 if chunk_size <= 0 else max(1, -(-frames // chunk_size))
