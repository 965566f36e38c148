"""Portrait phone videos: frames are read upright, as the display matrix says (hfagp.io.orientation)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from media import demo_frames, write_video

from hfagp.errors import HfagpError
from hfagp.io.images import read_rgb
from hfagp.preprocess.frame_store import open_frames, read_source
from hfagp.preprocess.frames import FrameSelection, extract_frames

FRAMES = 6
# The stored frames go through an exact YUV 4:4:4 encode; converting back to RGB rounds by a few levels.
ROUND_TRIP_LEVELS = 3


@pytest.fixture(scope="module")
def upright() -> list[np.ndarray]:
    """Real frames of the demo clip (a face, 176x144): what a player shows."""
    return demo_frames(FRAMES)


def stored_turned(frames: list[np.ndarray], rotation: int) -> list[np.ndarray]:
    """The pixels a camera stores when its display matrix turns them ``rotation`` degrees counter-clockwise to show them."""
    return [np.ascontiguousarray(np.rot90(frame, -(rotation // 90))) for frame in frames]


def opencv_frames(video) -> list[np.ndarray]:
    """The reference: OpenCV's FFmpeg reader, which applies the display matrix itself (CAP_PROP_ORIENTATION_AUTO)."""
    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    assert capture.get(cv2.CAP_PROP_ORIENTATION_AUTO) == 1
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def faces_found(frames_dir) -> int:
    probe = read_source(frames_dir)["face_probe"]
    return sum(height is not None for height in probe["face_heights"])


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_a_turned_video_is_read_upright_like_opencv_and_players(tmp_path, upright, rotation):
    video = write_video(tmp_path / "portrait.mp4", stored_turned(upright, rotation), display_rotation=rotation)
    table = extract_frames(video, tmp_path / "png", tmp_path / "png.parquet", FrameSelection(), storage="png")
    height, width = upright[0].shape[:2]
    assert (table.width == width).all() and (table.height == height).all()
    assert (table.rotation == rotation % 360).all()
    reference = opencv_frames(video)
    assert len(reference) == FRAMES == len(table)
    for index, truth in enumerate(upright):
        ours = read_rgb(tmp_path / "png" / f"{index:06d}.png")
        assert ours.shape == truth.shape == reference[index].shape
        assert np.abs(ours.astype(int) - truth).max() <= ROUND_TRIP_LEVELS
        # OpenCV converts YUV to RGB with its own rounding, so the two readers agree to a few levels, not bitwise.
        assert np.abs(ours.astype(int) - reference[index]).max() <= 2 * ROUND_TRIP_LEVELS
    assert faces_found(tmp_path / "png") > 0
    # Frames decoded again on demand (storage: video, seeking) are bitwise those the frames stage saw.
    extract_frames(video, tmp_path / "video", tmp_path / "video.parquet", FrameSelection(), storage="video")
    for index, rgb in open_frames(tmp_path / "video", tmp_path / "video.parquet").read([4, 1]):
        assert np.array_equal(rgb, read_rgb(tmp_path / "png" / f"{index:06d}.png"))


def test_without_the_display_matrix_the_stored_pixels_show_no_face(tmp_path, upright):
    # The same sideways pixels without the display matrix: what decoding without it would give the detector.
    video = write_video(tmp_path / "sideways.mp4", stored_turned(upright, -90))
    table = extract_frames(video, tmp_path / "png", tmp_path / "png.parquet", FrameSelection(), storage="png")
    assert (table.rotation == 0).all() and (table.width == upright[0].shape[0]).all()
    assert faces_found(tmp_path / "png") == 0


def test_a_mirroring_display_matrix_is_refused_and_nothing_is_written(tmp_path, upright):
    video = write_video(tmp_path / "mirrored.mp4", upright, display_rotation=90, display_hflip=True)
    with pytest.raises(HfagpError, match=r"mirrored\.mp4: its display matrix mirrors the picture.*re-encode it upright"):
        extract_frames(video, tmp_path / "f", tmp_path / "f.parquet", FrameSelection(), storage="png")
    assert not (tmp_path / "f").exists() and not (tmp_path / "f.parquet").exists()


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_the_angle_is_ffmpegs(tmp_path, upright, rotation):
    """rotation_degrees against FFmpeg's own av_display_rotation_get, which PyAV exposes as VideoFrame.rotation."""
    import av

    from hfagp.io.orientation import _display_matrix, rotation_degrees

    video = write_video(tmp_path / "turned.mp4", upright[:1], display_rotation=rotation)
    with av.open(str(video)) as container:
        frame = next(container.decode(video=0))
        matrix = _display_matrix(frame)
        assert matrix is not None
        assert (rotation_degrees(matrix) - float(frame.rotation)) % 360 == pytest.approx(0.0, abs=1e-6)  # 180 = -180
        assert rotation_degrees(matrix) % 360 == pytest.approx(rotation % 360)
