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
