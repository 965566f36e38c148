"""Image regions of the losses (hfagp.losses.regions): the soft face weights of the face SSIM term."""

from __future__ import annotations

import numpy as np
import pytest

from hfagp.losses.regions import FACE_FEATHER, FACE_GROWTH, face_weights, hull_mask


def ring(centre=(256.0, 280.0), radii=(120.0, 150.0), count=68) -> np.ndarray:
    """68 points on an ellipse, as x, y pixel coordinates of a 512 px crop (a stand-in for a face's landmarks)."""
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return np.stack([centre[0] + radii[0] * np.cos(angles), centre[1] + radii[1] * np.sin(angles)], axis=1)


def test_hull_mask_is_the_evaluations_face_region():
    from hfagp.evaluate.face_region import face_mask

    points = ring()
    np.testing.assert_array_equal(hull_mask(points, 512, 512), face_mask(points, 512, 512))
    assert not hull_mask(np.full((68, 2), np.nan), 64, 64).any()


@pytest.mark.parametrize("size", [64, 128])
def test_face_weights_cover_the_grown_hull_and_fade_out(size):
    points = ring()
    weights = face_weights(points, size, 512)
    assert weights.shape == (size, size) and weights.dtype == np.float32
    assert weights.min() >= 0.0 and weights.max() <= 1.0
    hull = hull_mask(points * size / 512, size, size)
    # Deep inside the hull the weight is 1; well outside the grown, feathered hull it is 0.
    centre = np.round(np.array([256.0, 280.0]) * size / 512).astype(int)
    assert weights[centre[1], centre[0]] == pytest.approx(1.0)
    assert weights[0, 0] == 0.0 and weights[-1, -1] == 0.0
    # The hull's own pixels keep at least half their weight (the edge is feathered, the growth is wider than it).
    assert weights[hull].min() >= 0.5
    # Growth: a pixel a little outside the hull (less than the growth) is still weighted.
    grow = FACE_GROWTH * size
    below = int(round((280.0 + 150.0) * size / 512 + grow / 2))
    assert weights[below, centre[0]] > 0.5
    # Beyond growth + 3 sigma of feather nothing is weighted.
    far = int(np.ceil((280.0 + 150.0) * size / 512 + grow + 3 * FACE_FEATHER * size + 1))
    if far < size:
        assert weights[far:, :].max() < 0.02


def test_face_weights_are_the_same_shape_at_any_size():
    points = ring()
    small, large = face_weights(points, 64, 512), face_weights(points, 128, 512)
    pooled = large.reshape(64, 2, 64, 2).mean(axis=(1, 3))
    assert np.abs(pooled - small).mean() < 0.02


def test_face_weights_refuse_missing_landmarks():
    with pytest.raises(ValueError, match="68 finite landmarks"):
        face_weights(np.full((68, 2), np.nan), 128, 512)
    with pytest.raises(ValueError, match="68 finite landmarks, got 5"):
        face_weights(ring(count=5), 128, 512)
