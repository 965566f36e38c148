"""Per-video-frame windows: AD-NeRF's aud.npy and the general fps rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import require_fixture

from hfagp.audio.windows import adnerf_windows, default_window_count, frame_windows, n_frames_50fps, track_50fps, window_centres


def adnerf_reference(features: np.ndarray, n_samples: int, rate: int) -> np.ndarray:
    """AD-NeRF's steps as the spec words them: interp to N50 rows, drop last, pad 8, stride-2 windows."""
    n50 = int(round(n_samples / rate * 50))
    t_in = np.arange(features.shape[0]) / 50.0
    t_out = np.arange(n50) / 50.0
    rows = np.stack([np.interp(t_out, t_in, features[:, j]) for j in range(features.shape[1])], axis=1)
    rows = rows[:-1]  # range(0, N - 1) windows of size 1: the last frame is dropped
    padded = np.concatenate([np.zeros((8, rows.shape[1])), rows, np.zeros((8, rows.shape[1]))])
    return np.array([padded[i:i + 16] for i in range(0, padded.shape[0] - 16, 2)])


def test_fixture_windows_from_tensorflow_logits():
    folder = require_fixture("deepspeech", "v010_h64")
    ref = np.load(folder / "outputs.npz")
    windows = adnerf_windows(ref["logits"], 67369, 22050)
    assert windows.shape == (76, 16, 29) and windows.dtype == np.float64
    assert np.array_equal(windows, ref["windows"])


@pytest.mark.parametrize("n_samples,rate,t", [(67369, 22050, 153), (16000, 16000, 50), (16160, 16000, 50),
                                              (48000, 48000, 46), (17000, 16000, 54), (800, 16000, 3)])
def test_matches_adnerf_reference_procedure(n_samples, rate, t):
    feats = np.random.default_rng(t).standard_normal((t, 29)).astype(np.float32)
    ours = adnerf_windows(feats, n_samples, rate)
    ref = adnerf_reference(feats, n_samples, rate)
    n50 = n_frames_50fps(n_samples, rate)
    assert ours.shape == ref.shape == (math.ceil((n50 - 1) / 2), 16, 29)
    assert np.array_equal(ours, ref)


def test_track_clamps_and_drops_last_row():
    feats = np.arange(3 * 2, dtype=np.float32).reshape(3, 2)
    track = track_50fps(feats, 6)
    assert track.shape == (5, 2)
    assert track[:, 0].tolist() == [0, 2, 4, 4, 4]
    assert track_50fps(feats, 0).shape == (0, 2)
    assert track_50fps(np.zeros((0, 2)), 4).tolist() == [[0, 0]] * 3


def test_fps25_with_frame_count_k_equals_adnerf_and_padding_truncation():
    feats = np.random.default_rng(0).standard_normal((153, 29))
    track = track_50fps(feats, 153)
    default = frame_windows(track, 25)
    assert default.shape[0] == 76
    assert np.array_equal(frame_windows(track, 25, 76), default)
    assert np.array_equal(frame_windows(track, 25, 50), default[:50])  # truncation
    longer = frame_windows(track, 25, 90)
    assert np.array_equal(longer[:76], default)
    assert not longer[80:].any()  # window 80 covers rows 152..167, all past the 152-row track
    assert longer[79, :2].any() and not longer[79, 2:].any()  # rows 150, 151 then zeros


def test_fps50_centres_every_track_row():
    track = np.random.default_rng(1).standard_normal((40, 29))
    windows = frame_windows(track, 50)
    assert windows.shape == (40, 16, 29)
    for k in (0, 7, 8, 20, 39):
        assert np.array_equal(windows[k, 8], track[k])  # row 8 of the window is the centre
        lo = max(k - 8, 0)
        assert np.array_equal(windows[k, 8 - (k - lo): 8], track[lo:k])
    assert not windows[0, :8].any()


def test_window_centres_and_counts_for_other_rates():
    assert window_centres(25, 4).tolist() == [0, 2, 4, 6]
    assert window_centres(30, 4).tolist() == [0, 2, 3, 5]  # 0, 1.67, 3.33, 5
    assert window_centres(20, 3).tolist() == [0, 3, 5]  # 2.5 rounds half up
    assert window_centres(30000 / 1001, 31)[-1] == round(30 * 50 * 1001 / 30000)
    for fps in (12.5, 24, 25, 29.97, 30, 50, 60):
        for rows in range(0, 30):
            k = default_window_count(fps, rows)
            centres = window_centres(fps, k + 1)
            assert (k == 0 or centres[k - 1] <= rows - 1) and centres[k] > rows - 1
    assert default_window_count(25, 152) == 76 and default_window_count(25, 151) == 76


def test_invalid_fps():
    with pytest.raises(ValueError):
        window_centres(0, 3)
