"""hfagp.evaluate.face_region: face mask / face PSNR on real faces, lip opening, its correlation, baselines."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from media import demo_frames
from scipy.stats import pearsonr
from skimage import data
from skimage.metrics import peak_signal_noise_ratio

from hfagp.evaluate import face_region, protocol
from hfagp.evaluate.frame_scoring import face_tracker
from hfagp.io.images import write_rgb


def real_faces() -> list[np.ndarray]:
    """Two real faces as uint8 RGB: the astronaut (256 px) and a carphone frame cropped around the face (128 px)."""
    astronaut = cv2.resize(data.astronaut()[26:226, 122:322], (256, 256), interpolation=cv2.INTER_AREA)
    carphone = cv2.resize(demo_frames(1)[0][12:116, 34:138], (128, 128), interpolation=cv2.INTER_CUBIC)
    return [astronaut, carphone]


def landmarks_of(rgb: np.ndarray) -> np.ndarray:
    found = face_tracker(*rgb.shape[:2]).track(rgb)
    assert found is not None, "dlib finds no face in a real face image"
    return found[2]


def test_face_mask_is_the_filled_convex_hull():
    square = np.array([[10, 10], [30, 10], [30, 30], [10, 30], [20, 20], [15, 25]], dtype=np.float64)
    mask = face_region.face_mask(square, 40, 50)
    assert mask.shape == (40, 50) and mask.dtype == bool
    assert mask[20, 20] and mask[10, 10] and mask[30, 30]  # inside and on the hull
    assert not mask[0, 0] and not mask[39, 49] and not mask[20, 31] and not mask[9, 20]
    assert mask.sum() == 21 * 21
    assert not face_region.face_mask(np.full((68, 2), np.nan), 40, 50).any()


def test_face_mask_of_real_landmarks():
    for rgb in real_faces():
        height, width = rgb.shape[:2]
        points = landmarks_of(rgb)
        mask = face_region.face_mask(points, height, width)
        nose = np.round(points[30]).astype(int)  # nose tip: inside the face
        assert mask[nose[1], nose[0]]
        assert not mask[0, 0] and not mask[-1, -1] and not mask[0, -1] and not mask[-1, 0]
        assert 0.1 < mask.mean() < 0.8
        hull = cv2.convexHull(points.astype(np.float32))
        for y, x in [(nose[1], nose[0]), (0, 0), (height // 2, 2)]:
            assert mask[y, x] == (cv2.pointPolygonTest(hull, (float(x), float(y)), False) >= 0)


def test_psnr_face_matches_skimage_on_real_faces():
    rng = np.random.default_rng(0)
    for rgb in real_faces():
        truth = rgb.astype(np.float64) / 255.0
        render = np.clip(truth + rng.normal(0, 0.04, truth.shape), 0, 1)
        render[: truth.shape[0] // 8] = 0.0  # damage outside the face only: the face PSNR must not see it
        points = landmarks_of(rgb)
        mask = face_region.face_mask(points, *truth.shape[:2])
        assert not mask[: truth.shape[0] // 8].any()
        expected = peak_signal_noise_ratio(truth[mask], render[mask], data_range=1.0)
        value = face_region.psnr_face(render, truth, points)
        assert value == pytest.approx(expected, abs=1e-9)
        assert 25 < value < 30  # sigma 0.04 noise, slightly clipped
        assert face_region.psnr_masked(render, truth, mask) == value
    assert math.isnan(face_region.psnr_face(render, truth, None))
    assert face_region.psnr_face(truth, truth, points) == math.inf
    assert math.isnan(face_region.psnr_masked(render, truth, np.zeros(truth.shape[:2], bool)))
    with pytest.raises(ValueError):
        face_region.psnr_masked(render, truth, np.ones((4, 4), bool))


def test_lip_opening_of_hand_made_landmarks():
    points = np.zeros((68, 2))
    points[36], points[45] = (0, 0), (10, 0)  # outer eye corners 10 apart
    points[61], points[67] = (4, 5), (4, 7)  # gap 2
    points[62], points[66] = (5, 5), (5, 9)  # gap 4
    points[63], points[65] = (6, 5), (9, 9)  # gap 5
    assert face_region.lip_opening(points) == pytest.approx((2 + 4 + 5) / 3 / 10)
    assert face_region.lip_opening(points * 3 + 7) == pytest.approx((2 + 4 + 5) / 3 / 10)  # scale free
    assert face_region.lip_opening(points.reshape(-1)) == pytest.approx(11 / 30)
    assert math.isnan(face_region.lip_opening(None))
    points[45] = points[36]
    assert math.isnan(face_region.lip_opening(points))
    with pytest.raises(ValueError):
        face_region.lip_opening(np.zeros((5, 2)))


def test_lip_opening_follows_a_real_mouth():
    frames = demo_frames(120)
    tracker = face_tracker(144, 176)
    openings = [face_region.lip_opening(tracker.track(frames[k])[2]) for k in (0, 112)]
    assert openings[0] < 0.08 < 0.2 < openings[1]  # closed at the start, open near the end of the clip


def test_lip_correlation_matches_scipy():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0.05, 0.4, 20)
    render = truth + rng.normal(0, 0.05, 20)
    render[[2, 7]] = np.nan  # no face in two renders
    truth[11] = np.nan
    found = face_region.lip_correlation(list(render), list(truth))
    keep = np.isfinite(render) & np.isfinite(truth)
    assert found["frames"] == 17 and found["reason"] is None
    assert found["value"] == pytest.approx(pearsonr(render[keep], truth[keep]).statistic, abs=1e-12)
    assert face_region.lip_correlation([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])["value"] == pytest.approx(-1.0)


def test_lip_correlation_null_cases():
    few = face_region.lip_correlation([0.1, 0.2, math.nan], [0.1, 0.3, 0.2])
    assert few["value"] is None and few["frames"] == 2 and "only 2" in few["reason"]
    assert face_region.lip_correlation([], [])["frames"] == 0
    flat = face_region.lip_correlation([0.1] * 5, [0.1, 0.2, 0.3, 0.2, 0.1])
    assert flat["value"] is None and flat["frames"] == 5 and "render lip opening does not vary" in flat["reason"]
    flat = face_region.lip_correlation([0.1, 0.2, 0.3], [0.2] * 3)
    assert flat["value"] is None and "ground truth lip opening does not vary" in flat["reason"]
    both = face_region.lip_correlation([0.3] * 3, [0.2] * 3)
    assert "render and ground truth" in both["reason"]


def test_last_train_frames_and_mean_image(tmp_path):
    rng = np.random.default_rng(4)
    images = {}
    for frame in range(2, 16):
        if frame == 14:
            continue  # untracked frame: no crop
        images[frame] = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        write_rgb(tmp_path / f"{frame:06d}.png", images[frame])
    train = [15, 3, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0, 1]
    assert face_region.last_train_frames(train, tmp_path) == [5, 6, 7, 8, 9, 10, 11, 12, 13, 15]
    assert face_region.last_train_frames(train, tmp_path, count=3) == [12, 13, 15]
    assert face_region.last_train_frames([0, 1, 2, 3], tmp_path) == [2, 3]
    assert face_region.last_train_frames([], tmp_path) == []
    paths = [tmp_path / f"{f:06d}.png" for f in (2, 3)]
    expected = (protocol.resize_to(images[2] / 255.0, 32, 32) + protocol.resize_to(images[3] / 255.0, 32, 32)) / 2
    assert np.allclose(face_region.mean_image(paths, 32, 32), expected, atol=1e-12)


def test_baseline_summary_and_novel_faces():
    rows = [
        {"face_gt": True, "baseline_psnr": 20.0, "baseline_psnr_face": 18.0},
        {"face_gt": False, "baseline_psnr": 22.0, "baseline_psnr_face": math.nan},
        {"face_gt": True, "baseline_psnr": 24.0, "baseline_psnr_face": 16.0},
    ]
    assert face_region.baseline_summary(rows, [7, 8]) == {"psnr": 22.0, "psnr_face": 17.0, "face_frames": 2, "frames": [7, 8]}
    assert face_region.baseline_summary(rows, []) == {"psnr": None, "psnr_face": None, "face_frames": 0, "frames": []}
    assert face_region.novel_faces([True, False, True, True]) == {"detected": 3, "frames": 4, "fraction": 0.75}
    assert face_region.novel_faces([])["fraction"] is None
