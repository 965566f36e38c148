"""NIQE, the no-reference "naturalness" score of Mittal, Soundararajan and Bovik (2013); lower is better.

Used by the evaluate stage for novel views, which have no ground truth.

What is computed: the NIQE that papers report, i.e. basicsr's
``basicsr.metrics.calculate_niqe(bgr, crop_border=0, input_order='HWC',
convert_to='y')`` (a port of the MATLAB ``niqe`` release that reproduces
MATLAB's values to about 1e-6 by basicsr's own comparison), with the MATLAB
release's pristine model as basicsr ships it
(``basicsr/metrics/niqe_pris_params.npz`` of ``basicsr-fixed``). basicsr and
pyiqa cannot be imported here (their package ``__init__`` needs torchvision,
which does not install next to the CPU torch build), so this module re-does
the computation with numpy/scipy and only *reads* basicsr's parameter file
(``load_npz``, no pickles); basicsr must be installed (``pip install --no-deps
basicsr-fixed==1.4.2``, part of ``make install``), it is never imported.

The steps, for one image:

1. Grey level. An (H, W, 3) image is taken as **RGB** (basicsr's function
   takes BGR; callers here hold RGB) and reduced to the Y channel of MATLAB's
   ``rgb2ycbcr`` (ITU-R BT.601, studio swing): ``Y = 16 + 65.481 R + 128.553 G
   + 24.966 B`` with R, G, B in [0, 1], evaluated with basicsr's float32 /
   float64 sequence of operations, then rounded to integers. An (H, W) image is
   used as it is (rounded). uint8 input is on 0..255, float input on [0, 1]
   (multiplied by 255 first).
2. The image is cut to a multiple of 96 px in both directions (the bottom and
   right rest is dropped; no ``crop_border`` beyond that).
3. MSCN coefficients ``(Y - mu) / (sigma + 1)``: mu and sigma are the local
   mean and standard deviation under the model's 7x7 window (MATLAB's
   ``fspecial('gaussian', 7, 7/6)``), ``scipy.ndimage.convolve`` with the
   ``nearest`` (replicate) border, in float32 as basicsr does.
4. Features of every non-overlapping 96x96 block: an asymmetric generalised
   Gaussian fit (moment matching over the shape grid 0.2, 0.201, ..., 10.0;
   left side = negative values, right side = positive values) of the block
   gives ``[shape, (left scale + right scale) / 2]``; fits of the products of
   the block with itself shifted cyclically by (0, 1), (1, 0), (1, 1) and
   (1, -1) give ``[shape, mean, left scale, right scale]`` each: 18 features.
   An empty side makes the scales NaN while the shape falls back to the first
   grid value (numpy's argmin over NaN), exactly as in basicsr.
5. The same on the image shrunk by 2 with MATLAB's ``imresize`` (bicubic,
   a = -0.5, antialiased: the kernel is stretched to 8 taps, mirrored borders;
   applied to Y / 255, then times 255) with 48x48 blocks: 36 features per
   block.
6. NIQE = ``sqrt(d^T pinv((cov_pristine + cov) / 2) d)`` with ``d`` the
   difference between the pristine mean and the NaN-ignoring mean of the block
   features, and ``cov`` their covariance (ddof 1) over the blocks without NaN.

Equality with basicsr is tested in ``tests/test_niqe.py``: basicsr's own,
unchanged ``calculate_niqe`` (loaded from its files without its package
``__init__``, ``tests/reference_tools.py``) is run on the BGR flip of each
test image (photographs, a grey image, odd sizes, float input, upscaled real
video frames of a face, blurred and noisy versions, a half-flat image) and
every value must agree to 1e-3 relative. Observed: at most 6e-5. The full
scale's features agree to about 1e-6; what remains is the last float32 bit
of basicsr's torch resize (its 8-tap sums go through the BLAS, in an order
that depends on the library and CPU; with basicsr's resize swapped in, all
cases agree to 1.4e-6). Flat image areas amplify such bits through the MSCN
step, and the shape grid's argmin can then move by one step.

Differences from basicsr: when fewer than two blocks have a full set of
features (e.g. a flat image) this module returns NaN where basicsr raises
``LinAlgError``; a negative rounding residue under the square root gives 0,
not NaN. The image must be at least 192x192 (2x2 blocks of 96).
"""

from __future__ import annotations

import functools
import importlib.metadata
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
REFERENCE_PACKAGE = "basicsr-fixed"
REFERENCE_INSTALL = "pip install --no-deps basicsr-fixed==1.4.2"
MODEL_FILE = ("metrics", "niqe_pris_params.npz")
# Cyclic (row, column) shifts of the four pairwise products: right, below, below-right, below-left neighbour.
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
# MATLAB rgb2ycbcr's Y row, in basicsr's BGR channel order (keeps its summation order).
_Y_BGR = [24.966, 128.553, 65.481]
WINDOW_SIGMA = 7.0 / 6.0
WINDOW_RADIUS = 3

# The AGGD shape grid and its moment ratio Gamma(2/g)^2 / (Gamma(1/g) Gamma(3/g)), as in the MATLAB release.
_SHAPES = np.arange(0.2, 10.001, 0.001)
_INV_SHAPES = np.reciprocal(_SHAPES)
_RATIOS = np.square(special.gamma(_INV_SHAPES * 2)) / (special.gamma(_INV_SHAPES) * special.gamma(_INV_SHAPES * 3))
_ARGMIN_ROWS = 64  # blocks per argmin batch (bounds the (rows, 9801) temporary)


def tool_version() -> str:
    """The reference whose algorithm and parameters are used, for the results table (``basicsr-fixed==1.4.2``)."""
    try:
        return f"{REFERENCE_PACKAGE}=={importlib.metadata.version(REFERENCE_PACKAGE)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{REFERENCE_PACKAGE} (not installed)"


TOOL = "hfagp port of basicsr calculate_niqe (MATLAB niqe release)"
DESCRIPTION = (
    f"NIQE by basicsr's calculate_niqe algorithm (MATLAB niqe release; crop_border=0, Y of MATLAB rgb2ycbcr) "
    f"with its pristine parameters, {tool_version()}, hfagp port"
)


@dataclass(frozen=True, eq=False)
class NiqeModel:
    """A pristine multivariate Gaussian, ``mu`` (36,) and ``cov`` (36, 36), and the 7x7 ``window`` of the MSCN step.

    ``source`` names the file it was read from.
    """

    mu: np.ndarray
    cov: np.ndarray
    window: np.ndarray
    source: str


def matlab_window() -> np.ndarray:
    """MATLAB's ``fspecial('gaussian', 7, 7/6)``: the 7x7 Gaussian of the MSCN step, normalised to sum 1.

    Equals the window stored in basicsr's parameter file to 1.4e-17 (last-bit
    differences from MATLAB's summation order).
    """
    taps = np.arange(-WINDOW_RADIUS, WINDOW_RADIUS + 1, dtype=np.float64)
    rows, cols = np.meshgrid(taps, taps, indexing="ij")
    window = np.exp(-(rows * rows + cols * cols) / (2.0 * WINDOW_SIGMA * WINDOW_SIGMA))
    return window / window.sum()


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float64)
    array.setflags(write=False)
    return array


def _read_model(path: Path, fix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    data = load_npz(path, "NIQE pristine model", fix)
    missing = [key for key in ("mu_pris_param", "cov_pris_param") if key not in data]
    if missing:
        raise HfagpError(f"NIQE pristine model {path} lacks {', '.join(missing)}; {fix}")
    mu, cov = np.ravel(data["mu_pris_param"]), np.asarray(data["cov_pris_param"])
    window = data.get("gaussian_window")
    if mu.shape != (36,) or cov.shape != (36, 36) or (window is not None and window.shape != (7, 7)):
        shapes = f"{data['mu_pris_param'].shape}, {cov.shape}" + ("" if window is None else f", {window.shape}")
        raise HfagpError(
            f"NIQE pristine model {path} has shapes {shapes}; expected mu_pris_param (1, 36), "
            f"cov_pris_param (36, 36) and optionally gaussian_window (7, 7); {fix}"
        )
    return mu, cov, window


def _basicsr_dir() -> Path:
    """basicsr's installed folder, found without importing it."""
    try:
        return package_dir("basicsr")
    except HfagpError:
        return Path("<site-packages>/basicsr")  # not installed: load_model's "not found" error names the fix


@functools.lru_cache(maxsize=4)
def load_model(path: str | None = None) -> NiqeModel:
    """The pristine model: basicsr's ``niqe_pris_params.npz`` (``path=None``) or an .npz in the same layout.

    The file holds ``mu_pris_param`` (1, 36), ``cov_pris_param`` (36, 36) and
    ``gaussian_window`` (7, 7); the window may be left out of a custom file
    (MATLAB's 7x7 Gaussian, :func:`matlab_window`, is then used).
    """
    if path is None:
        fix = f"reinstall the NIQE reference parameters: `{REFERENCE_INSTALL}` (or `make install`)"
        file = _basicsr_dir().joinpath(*MODEL_FILE)
        if not file.is_file():
            raise HfagpError(f"NIQE pristine model {file} not found; {fix}")
        mu, cov, window = _read_model(file, fix)
        if window is None or not np.allclose(window, matlab_window(), rtol=0.0, atol=1e-12):
            raise HfagpError(f"NIQE pristine model {file}: gaussian_window is not MATLAB's 7x7 Gaussian; {fix}")
        version = tool_version().replace("==", " ")
        source = f"{version} {'/'.join(MODEL_FILE)} (MATLAB niqe_image_params)"
        return NiqeModel(_frozen(mu), _frozen(cov), _frozen(window), source)
    file = Path(path).expanduser()
    fix = "fix --niqe-model (or leave it out for basicsr's MATLAB model)"
    if not file.is_file():
        raise HfagpError(f"NIQE pristine model {file} not found; {fix}")
    mu, cov, window = _read_model(file, fix)
    return NiqeModel(_frozen(mu), _frozen(cov), _frozen(matlab_window() if window is None else window), str(file))


def y_channel(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 integer grey levels 0..255: MATLAB's rgb2ycbcr Y of an RGB image, or a grey image rounded.

    ``image``: (H, W, 3) RGB or (H, W) grey, uint8 (0..255) or float ([0, 1]).
    Follows basicsr's dtypes step by step so that the rounding agrees.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected an (H, W, 3) RGB or (H, W) grey image, got shape {image.shape}")
    if image.dtype == np.uint8:
        levels = image
    elif np.issubdtype(image.dtype, np.floating):
        levels = image.astype(np.float64) * 255.0
    else:
        raise ValueError(f"expected a uint8 image or a float image in [0, 1], got dtype {image.dtype}")
    if image.ndim == 2:
        return levels.astype(np.float32).round()
    bgr = np.ascontiguousarray(levels[..., ::-1]).astype(np.float32) / 255.0  # float32, as basicsr's to_y_channel
    y = (np.dot(bgr, _Y_BGR) + 16.0) / 255.0  # float64 (the weights are float64)
    return (y.astype(np.float32) * 255.0).round()


def mscn(grey: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of a float32 0..255 grey image (replicate border)."""
    grey = np.asarray(grey, dtype=np.float32)
    mu = ndimage.convolve(grey, window, mode="nearest")
    sigma = np.sqrt(np.abs(ndimage.convolve(np.square(grey), window, mode="nearest") - np.square(mu)))
    return (grey - mu) / (sigma + 1)


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return inner + outer


def resize_taps(length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``imresize`` bicubic taps along one axis: ``(indices, weights)``, both (out, taps).

    ``out = ceil(length * scale)``; for ``scale < 1`` the kernel is stretched by
    ``1 / scale`` (antialiasing). Indices are 0-based and already mirrored into
    the image (MATLAB's symmetric padding: -1 -> 0, length -> length - 1).
    Weights are computed in float32 like basicsr's torch version.
    """
    out = math.ceil(length * scale)
    width = 4.0 / scale if scale < 1 else 4.0
    centre = np.arange(1, out + 1, dtype=np.float32) / np.float32(scale) + np.float32(0.5 * (1 - 1 / scale))
    first = np.floor(centre - np.float32(width / 2))
    taps = math.ceil(width) + 2
    indices = first[:, None] + np.arange(taps, dtype=np.float32)  # 1-based, as in MATLAB
    distance = centre[:, None] - indices
    weights = np.float32(scale) * _cubic(distance * np.float32(scale)) if scale < 1 else _cubic(distance)
    weights = (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
    zero_based = indices.astype(np.int64) - 1
    period = 2 * length
    folded = np.mod(zero_based, period)
    mirrored = np.where(folded >= length, period - 1 - folded, folded)
    return mirrored, weights


def imresize_half(grey: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(grey, 0.5)`` (bicubic, antialiased): float32 (H, W) -> float32 (ceil(H/2), ceil(W/2)).

    Rows first, then columns, each pass rounded to float32 like basicsr's
    torch version; the 8-tap sums themselves are accumulated in float64
    (basicsr's float32 BLAS sums differ from them in the last bit).
    """
    rows_idx, rows_w = resize_taps(grey.shape[0], 0.5)
    cols_idx, cols_w = resize_taps(grey.shape[1], 0.5)
    values = np.asarray(grey, dtype=np.float64)
    tall = np.zeros((rows_idx.shape[0], values.shape[1]))
    for k in range(rows_idx.shape[1]):
        tall += rows_w[:, k, None].astype(np.float64) * values[rows_idx[:, k], :]
    tall = tall.astype(np.float32).astype(np.float64)
    small = np.zeros((tall.shape[0], cols_idx.shape[0]))
    for k in range(cols_idx.shape[1]):
        small += cols_w[None, :, k].astype(np.float64) * tall[:, cols_idx[:, k]]
    return small.astype(np.float32)


def blocks(values: np.ndarray, size: int) -> np.ndarray:
    """(P, size, size) non-overlapping blocks of a map whose sides are multiples of ``size``.

    Column-major block order (down the first column of blocks, then the next), as basicsr loops.
    """
    rows, cols = values.shape[0] // size, values.shape[1] // size
    return values.reshape(rows, size, cols, size).transpose(2, 0, 1, 3).reshape(rows * cols, size, size)


def aggd_fit(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AGGD moment-matching fits of each row of ``values`` (P, n): ``(shape, left scale, right scale)``, each (P,).

    Left = negative values, right = positive values. The per-row means are
    rounded to float32 and combined in float32 as basicsr does with its
    float32 blocks; an empty side gives NaN scales and the first grid shape.
    """
    values = np.asarray(values, dtype=np.float32)
    count = values.shape[1]
    squares = np.square(values)
    negative, positive = values < 0, values > 0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        left_ms = np.where(negative, squares, 0).sum(axis=1, dtype=np.float64) / negative.sum(axis=1)
        right_ms = np.where(positive, squares, 0).sum(axis=1, dtype=np.float64) / positive.sum(axis=1)
        left_std = np.sqrt(left_ms.astype(np.float32))
        right_std = np.sqrt(right_ms.astype(np.float32))
        ratio = left_std / right_std
        mean_abs = (np.abs(values).sum(axis=1, dtype=np.float64) / count).astype(np.float32)
        mean_square = (squares.sum(axis=1, dtype=np.float64) / count).astype(np.float32)
        r_hat = mean_abs**2 / mean_square
        r_norm = (r_hat * (ratio**3 + 1) * (ratio + 1)) / ((ratio**2 + 1) ** 2)
        target = r_norm.astype(np.float64)
        position = np.empty(len(values), dtype=np.int64)
        for start in range(0, len(values), _ARGMIN_ROWS):
            part = target[start : start + _ARGMIN_ROWS, None]
            position[start : start + _ARGMIN_ROWS] = np.argmin((_RATIOS[None, :] - part) ** 2, axis=1)
    shape = _SHAPES[position]
    spread = np.sqrt(special.gamma(1 / shape) / special.gamma(3 / shape))
    return shape, left_std.astype(np.float64) * spread, right_std.astype(np.float64) * spread


def block_features(coefficients: np.ndarray) -> np.ndarray:
    """(P, 18) features of MSCN blocks (P, b, b), in the pristine model's layout (module docstring, step 4)."""
    coefficients = np.asarray(coefficients, dtype=np.float32)
    flat = coefficients.reshape(len(coefficients), -1)
    shape, left, right = aggd_fit(flat)
    columns = [shape, (left + right) / 2]
    for shift in SHIFTS:
        products = coefficients * np.roll(coefficients, shift, axis=(1, 2))
        shape, left, right = aggd_fit(products.reshape(len(coefficients), -1))
        mean = (right - left) * (special.gamma(2 / shape) / special.gamma(1 / shape))
        columns += [shape, mean, left, right]
    return np.stack(columns, axis=1)


def niqe_features(image: np.ndarray, model: NiqeModel | None = None) -> np.ndarray:
    """(P, 36) block features of an image at its two scales (see :func:`niqe` for the input format)."""
    window = (model or load_model()).window
    grey = y_channel(image)
    height, width = (grey.shape[0] // PATCH) * PATCH, (grey.shape[1] // PATCH) * PATCH
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ValueError(
            f"NIQE needs an image of at least {MIN_SIZE}x{MIN_SIZE} pixels, got {grey.shape[1]}x{grey.shape[0]}"
        )
    grey = grey[:height, :width]
    fine = block_features(blocks(mscn(grey, window), PATCH))
    half = imresize_half(grey / np.float32(255.0)) * np.float32(255.0)
    coarse = block_features(blocks(mscn(half, window), PATCH // 2))
    return np.concatenate([fine, coarse], axis=1)


def too_small_reason(height: int, width: int) -> str | None:
    """Why an image of this size has no NIQE (None when it is large enough)."""
    if height < MIN_SIZE or width < MIN_SIZE:
        return f"frames are {width}x{height}; NIQE needs at least {MIN_SIZE}x{MIN_SIZE} (2x2 patches of {PATCH})"
    return None


def niqe(image: np.ndarray, model: NiqeModel | None = None) -> float:
    """NIQE of an (H, W, 3) RGB or (H, W) grey image, uint8 or float in [0, 1]; lower is more natural.

    ``model`` defaults to basicsr's MATLAB pristine model (:func:`load_model`).
    Raises ValueError for images under 192x192; NaN if fewer than two blocks
    have all 36 features defined.
    """
    model = model or load_model()
    features = niqe_features(image, model)
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) < 2:
        return math.nan
    diff = model.mu - np.nanmean(features, axis=0)
    cov = (model.cov + np.cov(complete, rowvar=False)) / 2
    quality = float(np.matmul(np.matmul(diff, np.linalg.pinv(cov)), diff))
    return math.sqrt(max(quality, 0.0))
