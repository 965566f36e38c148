"""Per-video-frame windows of 50 fps features: AD-NeRF's ``aud.npy`` and its generalisation to any fps.

The 50 fps track (AD-NeRF's recipe, spec A "Rates and windows")
---------------------------------------------------------------
The network gives T rows at 50 fps (one per 2 MFCC frames). AD-NeRF resamples
them onto ``N50 = round(len_s * 50)`` rows with ``np.interp`` at the same grid
(an exact index clamp: row j is ``logits[min(j, T - 1)]``), then **drops the
last row**, so the track holds rows ``j = 0 .. N50 - 2`` and every index
outside that range reads as zeros (AD-NeRF's zero padding). ``len_s`` is the
duration of the audio as read, before resampling (samples / sample rate).

Windows
-------
Window k of a video at F fps is centred at ``t_k = k / F`` seconds, on track
row ``c_k = floor(t_k * 50 + 0.5)`` (round half up), and holds the 16 rows
``c_k - 8 ... c_k + 7`` (zeros outside the track), as float64 (N, 16, D).

Number of windows: ``n_frames`` when given (a video's frame count, a frames
table's row count); otherwise the windows whose centre lies on the track,
``K = #{k >= 0 : c_k <= N50 - 2}``. At 25 fps ``c_k = 2k`` and
``K = ceil((N50 - 1) / 2)``: exactly AD-NeRF's ``aud.npy`` (its stride-2
windows over the 8-zero-padded track). With ``n_frames`` the output has
exactly that many windows (windows past the audio are zeros, surplus audio is
not used); at 25 fps with ``n_frames = K`` it equals the AD-NeRF array, and at
50 fps every track row is the centre of one window.
"""

from __future__ import annotations

import math

import numpy as np

FEATURE_FPS = 50
WINDOW = 16
HALF = WINDOW // 2  # rows before the centre; WINDOW - HALF - 1 = 7 after it


def n_frames_50fps(n_samples: int, sample_rate: int) -> int:
    """AD-NeRF's ``N50 = round(len_s * 50)`` for the audio as read (numpy rounding)."""
    return int(np.round(float(n_samples) / float(sample_rate) * FEATURE_FPS))


def track_50fps(features: np.ndarray, n50: int) -> np.ndarray:
    """AD-NeRF's 50 fps track: ``features[min(j, T-1)]`` for ``j < N50 - 1`` (last row dropped), float64.

    ``np.interp`` at coinciding grid points is an index clamp; with T = 0 the
    track is all zeros.
    """
    features = np.asarray(features, dtype=np.float64)
    rows = max(n50 - 1, 0)
    if features.shape[0] == 0:
        return np.zeros((rows, features.shape[1]))
    index = np.minimum(np.arange(rows), features.shape[0] - 1)
    return features[index]


def window_centres(fps: float, n_windows: int) -> np.ndarray:
    """Track row at the centre of each window: ``floor(k * 50 / fps + 0.5)`` for k < n_windows."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    k = np.arange(n_windows, dtype=np.float64)
    return np.floor(k * (FEATURE_FPS / float(fps)) + 0.5).astype(np.int64)


def default_window_count(fps: float, track_rows: int) -> int:
    """Windows whose centre row lies on the track (K = ceil(track_rows / 2) at 25 fps)."""
    if track_rows <= 0:
        return 0
    # largest k with floor(k*50/fps + 0.5) <= track_rows - 1, found by estimate + correction
    k = int(math.floor((track_rows - 0.5) * float(fps) / FEATURE_FPS)) + 2
    while k > 0 and window_centres(fps, k)[-1] > track_rows - 1:
        k -= 1
    return k


def frame_windows(track: np.ndarray, fps: float, n_windows: int | None = None) -> np.ndarray:
    """(n_windows, 16, D) float64 windows of a 50 fps track, centred on each video frame's time."""
    track = np.asarray(track, dtype=np.float64)
    rows, dim = track.shape
    if n_windows is None:
        n_windows = default_window_count(fps, rows)
    centres = window_centres(fps, n_windows)
    index = centres[:, None] + np.arange(-HALF, WINDOW - HALF)[None, :]  # (N, 16)
    valid = (index >= 0) & (index < rows)
    out = np.zeros((n_windows, WINDOW, dim))
    out[valid] = track[index[valid]]
    return out


def adnerf_windows(features: np.ndarray, n_samples: int, sample_rate: int) -> np.ndarray:
    """AD-NeRF's ``aud.npy`` for a 25 fps video: (ceil((N50-1)/2), 16, D) float64."""
    track = track_50fps(features, n_frames_50fps(n_samples, sample_rate))
    return frame_windows(track, 25.0)
