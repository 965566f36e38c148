"""hfagp.evaluate.niqe: NIQE on a real photograph (scikit-image's astronaut) and its distorted versions."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage import data

from hfagp.errors import HfagpError
from hfagp.evaluate import niqe


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return data.astronaut()  # 512x512 RGB photograph


def test_model_is_scikit_videos(photo):
    model = niqe.load_model()
    assert model.mu.shape == (36,) and model.cov.shape == (36, 36)
    assert model.diagonal_left_scale
    # The model was fitted with the left scale twice for the diagonal products.
    assert model.mu[12] == model.mu[13] and model.mu[16] == model.mu[17]


def test_natural_image_scores_better_than_blur_and_noise(photo):
    clean = niqe.niqe(photo)
    blurred = niqe.niqe(cv2.GaussianBlur(photo, (0, 0), 3))
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 25, photo.shape), 0, 255).astype(np.uint8)
    assert 3.0 < clean < 15.0
    assert blurred > clean + 3.0
    assert niqe.niqe(noisy) > clean + 3.0


def test_input_formats_agree(photo):
    as_float = niqe.niqe(photo.astype(np.float64) / 255.0)
    assert as_float == pytest.approx(niqe.niqe(photo), rel=1e-9)
    grey = niqe.luminance(photo)
    assert niqe.niqe(grey.astype(np.float64) / 255.0) == pytest.approx(niqe.niqe(photo), rel=1e-9)


def test_too_small_and_flat_images():
    assert niqe.too_small_reason(128, 128) is not None
    assert niqe.too_small_reason(192, 300) is None
    with pytest.raises(ValueError):
        niqe.niqe(np.zeros((128, 300, 3), np.uint8))
    assert math.isnan(niqe.niqe(np.full((192, 192, 3), 128, np.uint8)))


def test_matlab_layout_model_file(tmp_path, photo):
    model = niqe.load_model()
    path = tmp_path / "pris.npz"
    np.savez(path, mu_pris_param=model.mu[None], cov_pris_param=model.cov)
    other = niqe.load_model(str(path))
    assert not other.diagonal_left_scale and other.source == str(path)
    assert math.isfinite(niqe.niqe(photo, other))
    with pytest.raises(HfagpError):
        niqe.load_model(str(tmp_path / "absent.npz"))
