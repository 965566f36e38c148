"""Stage landmarks: tracking, gap filling, smoothing, coverage (hfagp.preprocess.landmarks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from media import demo_frames

from hfagp.errors import HfagpError
from hfagp.preprocess.landmarks import DetectorSettings, FaceTracker, fill_gaps, interpolate_tracks, smooth_tracks
from hfagp.preprocess.spans import check_coverage


def test_fill_gaps_interpolates_short_inner_gaps_only():
    detected = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0], dtype=bool)
    interpolated, missing = fill_gaps(detected, max_gap=2)
    assert interpolated.tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    # leading/trailing gaps and the 3-frame gap stay missing
    assert missing.tolist() == [1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1]


def test_interpolate_tracks_is_linear_in_time():
    values = np.full((5, 2, 2), np.nan)
    values[0], values[4] = 0.0, 8.0
    known = np.array([1, 0, 0, 0, 1], bool)
    out = interpolate_tracks(values, known, ~known)
    np.testing.assert_allclose(out[:, 0, 0], [0, 2, 4, 6, 8])


def test_smoothing_reduces_jitter_and_keeps_segments_apart():
    rng = np.random.default_rng(0)
    track = np.concatenate([np.zeros(30), np.full(5, np.nan), np.full(30, 100.0)])[:, None]
    noisy = track + rng.normal(scale=1.0, size=track.shape)
    valid = ~np.isnan(track[:, 0])
    smoothed = smooth_tracks(noisy, valid, sigma=2.0)
    assert np.nanstd(smoothed[:30]) < 0.6 * np.std(noisy[:30])
    # no blending across the missing stretch: the second segment stays near 100
    assert np.abs(smoothed[35:] - 100).max() < 2.0
    assert np.isnan(smoothed[30:35]).all()
    np.testing.assert_array_equal(smooth_tracks(noisy, valid, sigma=0), noisy)


def coverage_table(flags: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"frame": range(len(flags)), "flag": flags})


def test_no_face_anywhere_is_a_clear_error():
    with pytest.raises(HfagpError, match="no face found in any of the 4 frames of clip.mp4"):
        check_coverage(coverage_table(["missing"] * 4), "clip.mp4", 0.2)


def test_too_many_missing_frames_is_a_clear_error():
    flags = ["ok"] * 6 + ["missing"] * 4
    with pytest.raises(HfagpError, match="4 of 10 frames.*max_missing_fraction"):
        check_coverage(coverage_table(flags), "clip.mp4", 0.2)
    check_coverage(coverage_table(flags), "clip.mp4", 0.5)  # a looser threshold accepts it


@pytest.fixture(scope="module")
def tracker():
    return FaceTracker(DetectorSettings(upsample=1))


def test_detects_the_demo_face_with_plausible_landmarks(tracker):
    for rgb in demo_frames(5):
        found = tracker.track(rgb)
        assert found is not None
        box, score, points = found
        assert points.shape == (68, 2)
        # nose tip inside the box, eyes above the mouth, left eye left of right eye
        assert box[0] < points[30, 0] < box[2] and box[1] < points[30, 1] < box[3]
        assert points[36:48, 1].mean() < points[48:68, 1].mean()
        assert points[36:42, 0].mean() < points[42:48, 0].mean()


def test_tracker_follows_the_face_nearest_the_previous_one(tracker):
    frame = demo_frames(1)[0]
    blank = np.zeros_like(frame)
    tracker._last_box = None
    left_box = tracker.track(np.concatenate([frame, blank], axis=1))[0]
    two_faces = np.concatenate([frame, frame], axis=1)
    box = tracker.track(two_faces)[0]
    assert np.allclose(box, left_box, atol=4), "should keep the face on the left"
    tracker._last_box = None
    right_box = tracker.track(np.concatenate([blank, frame], axis=1))[0]
    box = tracker.track(two_faces)[0]
    assert np.allclose(box, right_box, atol=4), "should keep the face on the right"


def test_unknown_detector_is_rejected():
    with pytest.raises(HfagpError, match="unknown face detector 'haar'"):
        FaceTracker(DetectorSettings(detector="haar"))


def test_missing_predictor_file_names_it(tmp_path):
    with pytest.raises(HfagpError, match="nope.dat not found"):
        FaceTracker(DetectorSettings(predictor_path=str(tmp_path / "nope.dat")))


def test_trackers_share_the_models_and_keep_their_own_face():
    """dlib's models load once per process (hfagp.preprocess.dlib_models); each tracker follows its own face."""
    frame = demo_frames(1)[0]
    blank = np.zeros_like(frame)
    two_faces = np.concatenate([frame, frame], axis=1)
    left, right = FaceTracker(DetectorSettings(upsample=1)), FaceTracker(DetectorSettings(upsample=1))
    assert left._predictor is right._predictor and left._hog is right._hog
    left.track(np.concatenate([frame, blank], axis=1))
    right.track(np.concatenate([blank, frame], axis=1))
    left_box, right_box = left.track(two_faces)[0], right.track(two_faces)[0]
    assert left_box[2] <= frame.shape[1] < right_box[0], "each tracker kept the face it was following"
    # the shared models give what freshly loaded ones give
    import dlib

    from hfagp.preprocess.dlib_models import model_file

    gray = np.ascontiguousarray(frame.mean(axis=2).astype(np.uint8))
    fresh = dlib.get_frontal_face_detector().run(gray, 1, 0.0)
    shared = left._hog.run(gray, 1, 0.0)
    assert [(r.left(), r.top(), r.right(), r.bottom()) for r in fresh[0]] == [
        (r.left(), r.top(), r.right(), r.bottom()) for r in shared[0]] and fresh[1] == shared[1]
    rect = fresh[0][0]
    predictor = dlib.shape_predictor(str(model_file(None, "shape_predictor_68_face_landmarks.dat")))
    fresh_points, shared_points = predictor(frame, rect).parts(), left._predictor(frame, rect).parts()
    assert [(p.x, p.y) for p in fresh_points] == [(p.x, p.y) for p in shared_points]
