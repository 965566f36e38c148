"""The EG3D/FFHQ crop (hfagp.preprocess.align.align_crop, hfagp.face3d.geometry.crop_window)."""

from __future__ import annotations

import numpy as np
import pytest

from hfagp.face3d import geometry as geo
from hfagp.face3d.face_model import LM3D_STD_5, extract_5p, landmark_model_68
from hfagp.preprocess.align import align_crop

COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255]], dtype=np.uint8)


def frontal_landmarks(scale: float, centre: tuple[float, float]) -> np.ndarray:
    """68 landmarks of the model seen frontally under weak perspective (pixel indices, y down)."""
    model = landmark_model_68()
    return np.stack([centre[0] + scale * model[:, 0], centre[1] - scale * model[:, 1]], axis=1)


def expected_crop_positions(points_3d: np.ndarray, image_scale: float) -> np.ndarray:
    """Where the spec puts model points in the 512 crop: 300 px per unit about the 1024 canvas centre,
    then the centre 700 square resized to 512.

    The reference flips y with ``H - 1 - y`` and so places the face one source
    pixel (``s`` canvas pixels, s = 300 / image_scale) higher than the centre.
    """
    s = 300.0 / image_scale
    canvas = np.stack([512 + 300 * points_3d[:, 0], 512 - 300 * points_3d[:, 1] - s], axis=1)
    return (canvas - 162) * 512 / 700


def synthetic_image(width: int, height: int, landmarks: np.ndarray) -> np.ndarray:
    """A grey image with a coloured 5x5 square on each of the 5 alignment points."""
    image = np.full((height, width, 3), 90, dtype=np.uint8)
    for (x, y), colour in zip(np.round(extract_5p(landmarks)).astype(int), COLOURS):
        image[y - 2 : y + 3, x - 2 : x + 3] = colour
    return image


def blob_centre(image: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Centroid (x, y) of the pixels close to ``colour``."""
    distance = np.abs(image.astype(int) - colour.astype(int)).sum(axis=2)
    ys, xs = np.nonzero(distance < 60)
    assert len(xs) > 0, "colour blob not found in the crop"
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize(
    "size,scale,centre", [((320, 260), 110.0, (150.0, 140.0)), ((176, 144), 60.0, (90.0, 70.0)), ((640, 480), 400.0, (330.0, 250.0))]
)
def test_crop_puts_the_five_points_where_the_spec_says(size, scale, centre):
    landmarks = frontal_landmarks(scale, centre)
    image = synthetic_image(*size, landmarks)
    crop, affine = align_crop(image, landmarks)
    assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8
    expected = expected_crop_positions(extract_5p(landmark_model_68()), scale)
    # The affine maps the landmarks there. Slack: the reference code truncates the
    # window to whole canvas pixels (<= 0.73 crop px) and resamples about pixel
    # centres (up to another ~0.7 px when upscaling 3x).
    mapped = geo.apply_affine(affine, extract_5p(landmarks))
    np.testing.assert_allclose(mapped, expected, atol=1.5)
    # ... and the image content sits exactly where the affine says (the squares
    # were drawn at the rounded positions).
    for colour, where in zip(COLOURS, geo.apply_affine(affine, np.round(extract_5p(landmarks)))):
        np.testing.assert_allclose(blob_centre(crop, colour), where, atol=0.6)


def test_crop_scale_is_219_px_per_model_unit():
    landmarks = frontal_landmarks(100.0, (160.0, 130.0))
    _, affine = align_crop(synthetic_image(320, 260, landmarks), landmarks)
    assert affine[0, 0] * 100.0 == pytest.approx(300 * 512 / 700, rel=0.01)
    assert affine[1, 1] * 100.0 == pytest.approx(300 * 512 / 700, rel=0.01)


def test_face_at_the_border_is_padded_with_black():
    landmarks = frontal_landmarks(70.0, (20.0, 72.0))  # face centre 20 px from the left edge
    image = synthetic_image(176, 144, landmarks)
    crop, _ = align_crop(image, landmarks)
    assert (crop[:, :40] == 0).all(), "area left of the frame must be zeros"
    assert (crop[:, 300:] == 90).all(axis=2).mean() > 0.5


def test_crop_window_uses_the_reference_integer_truncations():
    landmarks = frontal_landmarks(100.0, (160.3, 130.7))
    window = geo.crop_window(landmarks, (320, 260), LM3D_STD_5)
    lm5 = extract_5p(landmarks).copy()
    lm5[:, 1] = 260 - 1 - lm5[:, 1]
    t, s_pos = geo.pos_fit(lm5, LM3D_STD_5)
    s = 300 / s_pos
    assert window.resized_size == (int(320 * s), int(260 * s))
    assert window.left == int(int(320 * s) / 2 - 512 + (t[0] - 160) * s)
    assert window.up == int(int(260 * s) / 2 - 512 + (130 - t[1]) * s)
