"""hfagp.evaluate.protocol: sizes, regions and colour spaces of the evaluation, on real faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from media import demo_frames
from reference_tools import basicsr_metrics
from skimage import color, data

from hfagp.evaluate import face_region, protocol
from hfagp.evaluate.protocol import Protocol
from hfagp.evaluate.frame_scoring import face_tracker


def astronaut_face() -> np.ndarray:
    return cv2.resize(data.astronaut()[26:226, 122:322], (512, 512), interpolation=cv2.INTER_CUBIC)


def landmarks_of(rgb: np.ndarray) -> np.ndarray:
    found = face_tracker(*rgb.shape[:2]).track(rgb)
    assert found is not None, "dlib finds no face in a real face image"
    return found[2]


def test_protocol_values_and_sizes():
    assert Protocol().size((128, 128)) == (512, 512)
    assert Protocol(resolution="render").size((128, 96)) == (128, 96)
    assert Protocol(resolution=256, region="head", color="y").describe() == \
        "256 px, Y (BT.601 studio swing) [0,1], head only (ground truth pasted outside the head mask)"
    assert Protocol().describe((512, 512)) == "512 px, RGB [0,1], full frame"
    assert not Protocol().needs_mask and Protocol(region="face").needs_mask
    for bad in ({"region": "torso"}, {"color": "lab"}, {"resolution": 0}, {"resolution": "native"}):
        with pytest.raises(ValueError):
            Protocol(**bad)


def test_resize_to_enlarges_bicubic_and_shrinks_by_area():
    rgb = astronaut_face().astype(np.float64) / 255.0
    small = protocol.resize_to(rgb, 128, 128)
    expected = cv2.resize(rgb.astype(np.float32), (128, 128), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(small, expected, atol=1e-7)
    large = protocol.resize_to(small, 512, 512)
    expected = np.clip(cv2.resize(small.astype(np.float32), (512, 512), interpolation=cv2.INTER_CUBIC), 0, 1)
    np.testing.assert_allclose(large, expected, atol=1e-7)
    assert large.min() >= 0 and large.max() <= 1
    assert protocol.resize_to(rgb, 512, 512) is not None and np.array_equal(protocol.resize_to(rgb, 512, 512), rgb)


def test_luma_equals_matlab_rgb2ycbcr_references():
    """Y of basicsr's rgb2ycbcr (MATLAB's) and of scikit-image's rgb2ycbcr, on a real photograph."""
    rgb = data.astronaut()
    unit = rgb.astype(np.float64) / 255.0
    ours = protocol.luma(unit)[..., 0]
    skimage_y = color.rgb2ycbcr(unit)[..., 0] / 255.0
    np.testing.assert_allclose(ours, skimage_y, atol=1e-12)
    basicsr_metrics()  # registers the bare basicsr packages
    from basicsr.utils.color_util import rgb2ycbcr

    basicsr_y = rgb2ycbcr(unit.astype(np.float32), y_only=True)
    np.testing.assert_allclose(ours, basicsr_y, atol=1e-6)
    assert protocol.to_color(unit, "rgb") is not None and protocol.to_color(unit, "y").shape == (512, 512, 1)


def test_head_mask_grows_the_face_hull_up_to_the_forehead():
    for rgb in (astronaut_face(), cv2.resize(demo_frames(1)[0][12:116, 34:138], (512, 512),
                                             interpolation=cv2.INTER_CUBIC)):
        points = landmarks_of(rgb)
        face = protocol.region_mask(points, "face", 512, 512)
        head = protocol.region_mask(points, "head", 512, 512)
        np.testing.assert_array_equal(face, face_region.face_mask(points, 512, 512))
        assert (head >= face).all() and head.sum() > 1.2 * face.sum()
        lifted = protocol.head_points(points)[68:]
        brow_to_nose = np.linalg.norm(points[17:27].mean(axis=0) - points[33])
        np.testing.assert_allclose(np.linalg.norm(lifted - points[17:27], axis=1), brow_to_nose)
        forehead = np.round(lifted.mean(axis=0) * 0.5 + points[17:27].mean(axis=0) * 0.5).astype(int)
        assert head[forehead[1], forehead[0]] and not face[forehead[1], forehead[0]]
        assert lifted[:, 1].mean() < points[17:27, 1].mean()  # upwards in an upright face
    assert protocol.region_mask(None, "head", 8, 8) is None and protocol.region_mask(points, "full", 8, 8) is None


def test_apply_region():
    rng = np.random.default_rng(0)
    render, truth = rng.uniform(size=(2, 16, 16, 3))
    mask = np.zeros((16, 16), bool)
    mask[4:12, 4:12] = True
    a, b = protocol.apply_region(render, truth, "full", None)
    assert a is render and b is truth
    a, b = protocol.apply_region(render, truth, "head", mask)
    assert np.array_equal(a[mask], render[mask]) and np.array_equal(a[~mask], truth[~mask]) and b is truth
    a, b = protocol.apply_region(render, truth, "face", mask)
    assert np.array_equal(a[mask], render[mask]) and np.array_equal(b[mask], truth[mask])
    assert (a[~mask] == 1).all() and (b[~mask] == 1).all()
    with pytest.raises(ValueError):
        protocol.apply_region(render, truth, "head", None)
