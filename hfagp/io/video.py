"""Video files of the render stage: H.264 writing with optional audio, reading back, side-by-side frames.

``write_video`` encodes RGB uint8 frames with PyAV (the FFmpeg libraries in
the ``av`` wheel, no system ffmpeg): libx264, yuv420p, CRF 18 (visually
lossless; players everywhere accept yuv420p). yuv420p needs even sizes, so an
odd last row/column is repeated once (nothing is cut). Audio, when given as
``(wav path, start seconds)``, is the 16 kHz mono ``results/<s>/audio.wav``
of the audio stage (any rate / channel count is accepted and mixed to mono),
taken from ``start`` and trimmed to the video's length; it is encoded as AAC
at the wav's sample rate and interleaved with the video as frames are
written. Files are written atomically: an interrupted or failed write leaves
no file at ``path``.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np

from hfagp.errors import HfagpError
from hfagp.io.atomic import atomic_path

CRF = 18
AUDIO_CHUNK = 1024  # samples per AAC frame


def _rate(fps: float) -> Fraction:
    """Frame rate as a fraction (29.97 -> 2997/100, 25 -> 25)."""
    if not fps or fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"fps must be a positive number, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def even_frame(rgb: np.ndarray) -> np.ndarray:
    """Repeat the last row/column once where height/width is odd (yuv420p needs even sizes)."""
    height, width = rgb.shape[:2]
    if height % 2 or width % 2:
        rgb = np.pad(rgb, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    return np.ascontiguousarray(rgb)


def read_wav_mono(path: str | os.PathLike, start: float = 0.0) -> tuple[np.ndarray, int]:
    """float32 mono samples in [-1, 1] from ``start`` seconds on, and the sample rate."""
    from scipy.io import wavfile

    path = Path(path)
    if not path.is_file():
        raise HfagpError(f"audio file {path} not found; run the audio stage (hfagp audio) or render without audio")
    try:
        rate, data = wavfile.read(path)
    except (ValueError, OSError) as err:
        raise HfagpError(f"cannot read {path} as a wav file ({err}); rerun the audio stage") from err
    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
    data = data.astype(np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1)
    first = int(round(max(start, 0.0) * rate))
    return np.clip(data[first:], -1.0, 1.0), int(rate)


class _AudioTrack:
    """Feeds wav samples to an AAC stream up to a given time, so audio interleaves with video."""

    def __init__(self, container, samples: np.ndarray, rate: int):
        self.stream = container.add_stream("aac", rate=rate)
        self.stream.layout = "mono"
        self.samples, self.rate, self.sent = samples, rate, 0

    def encode_until(self, container, seconds: float, final: bool = False) -> None:
        """Encode whole chunks up to ``seconds`` (on ``final``, also the partial rest, then flush)."""
        import av

        end = min(len(self.samples), int(round(seconds * self.rate)))
        while self.sent < end and (final or end - self.sent >= AUDIO_CHUNK):
            stop = min(self.sent + AUDIO_CHUNK, end)
            chunk = np.ascontiguousarray(self.samples[self.sent : stop].reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = self.rate, self.sent
            container.mux(self.stream.encode(frame))
            self.sent = stop
        if final:
            container.mux(self.stream.encode())


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float,
    audio: tuple[str | os.PathLike, float] | None = None,
    crf: int = CRF,
) -> int:
    """Encode (H, W, 3) uint8 RGB frames as an H.264 mp4 at ``path`` (atomically); returns the frame count.

    ``audio = (wav path, start seconds)`` muxes that audio, trimmed to the
    video's duration. All frames must have the size of the first.
    """
    import av

    rate = _rate(fps)
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError(f"no frames to write to {path}")
    samples = read_wav_mono(*audio) if audio is not None else None
    size = np.asarray(first).shape
    if len(size) != 3 or size[2] != 3:
        raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got shape {size}")
    count = 0
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w") as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.height, stream.width = size[0] + size[0] % 2, size[1] + size[1] % 2
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(int(crf))}
            track = _AudioTrack(container, *samples) if samples is not None else None
            for rgb in _chain(first, iterator):
                rgb = np.asarray(rgb)
                if rgb.shape != size:
                    raise ValueError(f"frame {count} has shape {rgb.shape}, expected {size} like the first frame")
                frame = av.VideoFrame.from_ndarray(even_frame(rgb.astype(np.uint8, copy=False)), format="rgb24")
                container.mux(stream.encode(frame))
                count += 1
                if track is not None:
                    track.encode_until(container, float(count / rate))
            container.mux(stream.encode())
            if track is not None:
                track.encode_until(container, float(count / rate), final=True)
    return count


def _chain(first: np.ndarray, rest) -> Iterable[np.ndarray]:
    yield first
    yield from rest


def read_video_info(path: str | os.PathLike) -> dict:
    """``{frames, fps, width, height, has_audio, duration}`` of a video (frames counted from its packets).

    ``duration`` is ``frames / fps`` in seconds; ``audio_duration`` (seconds)
    is added when there is an audio stream.
    """
    import av

    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise HfagpError(f"cannot read video {path}: {err}; rerun the render stage") from err
    with container:
        if not container.streams.video:
            raise HfagpError(f"{path} has no video stream; rerun the render stage")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else math.nan
        info = {
            "fps": fps,
            "width": int(stream.codec_context.width),
            "height": int(stream.codec_context.height),
            "has_audio": bool(container.streams.audio),
        }
        audio = container.streams.audio[0] if container.streams.audio else None
        frames, audio_end = 0, 0.0
        for packet in container.demux(*container.streams):
            if packet.size == 0:
                continue
            if packet.stream.type == "video":
                frames += 1
            elif audio is not None and packet.pts is not None:
                audio_end = max(audio_end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    info["frames"] = frames
    info["duration"] = frames / fps if fps else math.nan
    if audio is not None:
        info["audio_duration"] = audio_end
    return info


def _resize_to_height(rgb: np.ndarray, height: int) -> np.ndarray:
    import cv2

    if rgb.shape[0] == height:
        return rgb
    width = max(1, int(round(rgb.shape[1] * height / rgb.shape[0])))
    interpolation = cv2.INTER_AREA if height < rgb.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(rgb, (width, height), interpolation=interpolation)


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left | right`` (e.g. ground truth | render) as one uint8 image; the lower one is scaled up to the taller height."""
    left, right = np.asarray(left, dtype=np.uint8), np.asarray(right, dtype=np.uint8)
    height = max(left.shape[0], right.shape[0])
    return np.hstack([_resize_to_height(left, height), _resize_to_height(right, height)])


def stream_frame_rate(stream) -> float | None:
    """Frame rate of a PyAV video stream (average, else guessed, else base rate), or None."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else None
