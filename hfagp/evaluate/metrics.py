"""Full-reference image metrics of the evaluate stage: PSNR, SSIM, L1, LPIPS, AKD and LMD.

Images are float arrays in [0, 1] of shape (H, W, 3), or (H, W, 1) for a luma
channel (use :func:`to_unit` on uint8 frames); both images of a pair have the
same shape. What region, size and colour space they are in is the evaluation
protocol's business (:mod:`hfagp.evaluate.protocol`). Conventions:

* **PSNR** ``10 log10(data_range^2 / MSE)`` over all pixels and channels.
  Identical images have MSE 0 and PSNR ``+inf`` (returned as ``math.inf``,
  not clamped); summaries (:func:`summarize`) average finite values only and
  say how many were left out.
* **SSIM** scikit-image's ``structural_similarity`` with the settings of
  Wang et al. 2004 used by the face-avatar papers (and MATLAB's ``ssim``):
  11x11 Gaussian window with sigma 1.5 (``gaussian_weights=True``),
  population covariances (``use_sample_covariance=False``), K1 0.01,
  K2 0.03, ``data_range=1``, computed per RGB channel and averaged
  (``channel_axis=-1``).
* **L1** mean absolute difference over pixels and channels, in [0, 1] units.
* **LPIPS** :class:`LpipsScorer` wraps :func:`hfagp.losses.lpips.load_lpips`: the
  distance exists only when the real backbone weights exist; otherwise the
  scorer is "absent" with a reason and callers report ``n/a`` (never a number
  from an untrained backbone).
* **AKD** mean Euclidean distance (pixels) between corresponding points of two
  68-point landmark sets; NaN when either set is missing.
* **LMD** (landmark distance of the mouth, as the RAD-NeRF / ER-NeRF family
  computes it): the mouth points 48-67 (0-based) of each set, each set
  centred on its own mean, mean Euclidean distance in pixels; NaN when either
  set is missing. The centring removes head translation, so LMD measures
  mouth shape (lip sync), AKD the whole face's placement.

PSNR, SSIM and L1 equal scikit-image's ``peak_signal_noise_ratio`` /
``structural_similarity`` / a mean absolute difference and basicsr's
``calculate_psnr`` / ``calculate_ssim`` (tests/test_metrics.py checks them on
photographs); LPIPS equals lpips 0.1.4 (tests/test_lpips.py).

torch and scikit-image are imported lazily so importing this module (and
starting the CLI) stays light.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

# SSIM settings (Wang et al. 2004), see the module docstring.
SSIM_SETTINGS = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "K1": 0.01, "K2": 0.03}
SSIM_DESCRIPTION = "skimage structural_similarity, Gaussian window sigma 1.5, population covariance, per-channel mean"

LPIPS_ABSENT = "n/a: backbone weights absent"


def to_unit(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float64 in [0, 1]; float input is returned as float64 unchanged."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    return image.astype(np.float64, copy=False)


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise ValueError(f"expected (H, W, 3) or (H, W, 1) images, got {a.shape}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB; ``math.inf`` for identical images."""
    a, b = _check_pair(a, b)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Structural similarity with the settings in :data:`SSIM_SETTINGS` (mean over the RGB channels)."""
    from skimage.metrics import structural_similarity

    a, b = _check_pair(a, b)
    return float(structural_similarity(a, b, channel_axis=-1, data_range=data_range, **SSIM_SETTINGS))


def l1(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference."""
    a, b = _check_pair(a, b)
    return float(np.mean(np.abs(a - b)))


def akd(landmarks_a: np.ndarray | None, landmarks_b: np.ndarray | None) -> float:
    """Average keypoint distance: mean Euclidean distance over the 68 (x, y) points; NaN if either is missing."""
    if landmarks_a is None or landmarks_b is None:
        return math.nan
    a = np.asarray(landmarks_a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(landmarks_b, dtype=np.float64).reshape(-1, 2)
    if a.shape != b.shape:
        raise ValueError(f"landmark sets differ in size: {a.shape} vs {b.shape}")
    if np.isnan(a).any() or np.isnan(b).any():
        return math.nan
    return float(np.mean(np.linalg.norm(a - b, axis=1)))


MOUTH = slice(48, 68)


def lmd(landmarks_a: np.ndarray | None, landmarks_b: np.ndarray | None) -> float:
    """Mouth landmark distance: mean distance of points 48-67 after centring each set on its mean; NaN if missing."""
    if landmarks_a is None or landmarks_b is None:
        return math.nan
    a = np.asarray(landmarks_a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(landmarks_b, dtype=np.float64).reshape(-1, 2)
    if a.shape != (68, 2) or b.shape != (68, 2):
        raise ValueError(f"LMD needs two 68-point landmark sets, got {a.shape} and {b.shape}")
    mouth_a, mouth_b = a[MOUTH] - a[MOUTH].mean(axis=0), b[MOUTH] - b[MOUTH].mean(axis=0)
    return float(np.mean(np.linalg.norm(mouth_a - mouth_b, axis=1)))


def summarize(values) -> dict:
    """``{"mean", "std", "count", "nonfinite"}`` over the finite values (std with ddof 0); mean/std None if none."""
    array = np.asarray(list(values), dtype=np.float64)
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return {"mean": None, "std": None, "count": 0, "nonfinite": int(array.size)}
    return {
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "count": int(finite.size),
        "nonfinite": int(array.size - finite.size),
    }


class LpipsScorer:
    """LPIPS loaded once; :attr:`available` is False (with :attr:`reason`) when the backbone file is absent.

    ``scorer(a, b)`` takes two (H, W, 3) images in [0, 1] and returns the
    distance, or None when LPIPS is unavailable. Other load errors (a corrupt
    or wrong file) raise :class:`HfagpError`: a broken file is a user error,
    an absent one a documented degradation.
    """

    def __init__(self, backbone: str = "alex", weights: str | os.PathLike | None = None, device: str = "cpu"):
        from hfagp.losses.lpips import LpipsWeightsMissing, canonical_backbone, load_lpips

        self.backbone = canonical_backbone(backbone)
        self.device = device
        self.model = None
        self.reason: str | None = None
        self.weights = None if weights is None else str(Path(weights).expanduser())
        try:
            self.model = load_lpips(self.backbone, weights, device=device)
        except LpipsWeightsMissing as err:
            self.reason = str(err)
            self.weights = str(err.path)

    @property
    def available(self) -> bool:
        """Whether real backbone weights were loaded."""
        return self.model is not None

    @property
    def description(self) -> str:
        """What the LPIPS column means: the backbone name, or ``n/a: backbone weights absent``."""
        return self.backbone if self.available else LPIPS_ABSENT

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float | None:
        if self.model is None:
            return None
        import torch

        a, b = _check_pair(a, b)

        def tensor(image: np.ndarray) -> "torch.Tensor":
            data = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))
            return (data.unsqueeze(0) * 2.0 - 1.0).to(self.device)

        with torch.no_grad():
            return float(self.model(tensor(a), tensor(b))[0])


def lpips_or_none(
    backbone: str = "alex", weights: str | os.PathLike | None = None, device: str = "cpu"
) -> tuple["object | None", str | None]:
    """``(LPIPS module, None)`` when the backbone weights exist, else ``(None, reason)``."""
    scorer = LpipsScorer(backbone, weights, device)
    return scorer.model, scorer.reason
