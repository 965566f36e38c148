"""hfagp.io.video: H.264 writing (with and without audio), reading back, atomicity, side-by-side."""

from __future__ import annotations

import av
import numpy as np
import pytest
from scipy.io import wavfile

from hfagp.errors import HfagpError
from hfagp.io.video import read_video_info, side_by_side, write_video


def frames(count: int, height: int = 64, width: int = 80) -> list[np.ndarray]:
    return [np.full((height, width, 3), (20 * i) % 250, np.uint8) for i in range(count)]


def wav(path, seconds: float = 3.0, rate: int = 16000):
    t = np.arange(int(seconds * rate)) / rate
    wavfile.write(path, rate, (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))
    return path


def test_write_and_read_back(tmp_path):
    path = tmp_path / "out.mp4"
    assert write_video(path, frames(12), fps=12) == 12
    info = read_video_info(path)
    assert info == {"fps": 12.0, "width": 80, "height": 64, "has_audio": False, "frames": 12, "duration": 1.0}
    with av.open(str(path)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert abs(float(first.mean()) - 0.0) < 3.0


def test_odd_size_and_ntsc_rate(tmp_path):
    path = tmp_path / "odd.mp4"
    write_video(path, iter(frames(5, 63, 81)), fps=29.97)
    info = read_video_info(path)
    assert (info["width"], info["height"], info["frames"]) == (82, 64, 5)
    assert info["fps"] == pytest.approx(29.97, abs=1e-3)


def test_audio_is_muxed_and_trimmed(tmp_path):
    path = tmp_path / "talk.mp4"
    write_video(path, frames(25), fps=25, audio=(wav(tmp_path / "audio.wav"), 0.5))
    info = read_video_info(path)
    assert info["has_audio"] and info["frames"] == 25
    assert info["audio_duration"] == pytest.approx(1.0, abs=0.1)
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        assert container.streams.audio[0].rate == 16000


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "broken.mp4"

    def failing():
        yield from frames(3)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):
        write_video(path, failing(), fps=10)
    with pytest.raises(ValueError):
        write_video(path, frames(2) + frames(1, 32, 32), fps=10)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(HfagpError):
        write_video(path, frames(2), fps=10, audio=(tmp_path / "absent.wav", 0.0))
    with pytest.raises(ValueError):
        write_video(path, [], fps=10)


def test_side_by_side():
    left = np.zeros((64, 64, 3), np.uint8)
    right = np.full((32, 48, 3), 200, np.uint8)
    both = side_by_side(left, right)
    assert both.shape == (64, 64 + 96, 3) and both.dtype == np.uint8
    assert both[:, :64].max() == 0 and both[:, 64:].min() >= 199
