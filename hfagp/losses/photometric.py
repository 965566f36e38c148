"""The photometric loss of inversion and training: MSE + LPIPS (+ optional SSIM terms).

``total = mse * MSE + lpips * LPIPS + ssim * (1 - SSIM) + face_ssim * (1 - SSIM_face)``
on images in [-1, 1]. ``SSIM_face`` is the same SSIM map averaged with the
batch's face weights (:func:`hfagp.losses.regions.face_weights`) instead of
uniformly: structure asked for where the driving signal can explain it.

LPIPS needs torchvision's ImageNet backbone weights (see :mod:`hfagp.losses.lpips`).
When ``weights.lpips > 0`` and that file is absent, the loss logs one loud
warning per process, reports ``uses_lpips = False`` and continues with MSE
(+ SSIM). A backbone with untrained weights is never used in its place.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hfagp.errors import HfagpError
from hfagp.logs import get_logger
from hfagp.losses.lpips import CONFIG_KEY, LpipsWeightsMissing, canonical_backbone, load_lpips

log = get_logger("losses")

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

# One loud warning per process when LPIPS falls back to MSE.
_WARNED_LPIPS_MISSING = False


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms; a term with weight 0 is not computed (MSE always is)."""

    mse: float = 1.0
    lpips: float = 1.0
    ssim: float = 0.0
    face_ssim: float = 0.0

    def __post_init__(self) -> None:
        for field in ("mse", "lpips", "ssim", "face_ssim"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise HfagpError(f"loss weight {field} must be a finite number >= 0, got {value!r}; check config.yaml")


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps (float32)."""
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable depthwise Gaussian filter, 'valid' borders (no padding)."""
    channels = x.shape[1]
    size = window.numel()
    kh = window.view(1, 1, size, 1).expand(channels, 1, size, 1)
    kw = window.view(1, 1, 1, size).expand(channels, 1, 1, size)
    return F.conv2d(F.conv2d(x, kh, groups=channels), kw, groups=channels)


def ssim(
    x: torch.Tensor, y: torch.Tensor, window_size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample (B,) mean SSIM of images in [0, 1] (Wang et al. 2004: Gaussian 11x11, sigma 1.5,
    K1 0.01, K2 0.03, 'valid' window positions, averaged over channels and pixels). Differentiable.

    ``weight`` (B,1,H,W), optional: a weighted instead of a uniform mean over the
    pixels, the weight taken at each window's centre (so cropped by
    ``window_size // 2`` on every side, like the map); all channels alike.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim expects two (B,C,H,W) images of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) < window_size:
        raise ValueError(f"ssim needs images of at least {window_size}x{window_size} pixels, got {tuple(x.shape[-2:])}")
    window = gaussian_window(window_size, sigma).to(device=x.device, dtype=x.dtype)
    c1 = SSIM_K1**2
    c2 = SSIM_K2**2
    mu_x = _blur(x, window)
    mu_y = _blur(y, window)
    sxx = _blur(x * x, window) - mu_x**2
    syy = _blur(y * y, window) - mu_y**2
    sxy = _blur(x * y, window) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    value = num / den
    if weight is None:
        return value.mean(dim=(1, 2, 3))
    if weight.dim() != 4 or weight.shape[1] != 1 or weight.shape[0] != x.shape[0] or weight.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"ssim weight must be (B,1,H,W) = ({x.shape[0]},1,{x.shape[2]},{x.shape[3]}), got {tuple(weight.shape)}")
    half = window_size // 2
    centre = weight[:, :, half : weight.shape[2] - half, half : weight.shape[3] - half].to(value.dtype)
    return (value * centre).sum(dim=(1, 2, 3)) / (centre.sum(dim=(1, 2, 3)) * value.shape[1]).clamp_min(1e-12)


class PhotometricLoss(nn.Module):
    """MSE + LPIPS (+ SSIM) between predicted and target images in [-1, 1].

    ``uses_lpips`` is True only when real backbone weights were loaded;
    ``description`` says in words what the loss computes.
    """

    def __init__(
        self,
        weights: LossWeights,
        lpips_backbone: str = "alex",
        lpips_weights: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        self.weights = weights
        self.lpips: nn.Module | None = None
        self.uses_lpips = False
        self.mse_weight = float(weights.mse)
        backbone = canonical_backbone(lpips_backbone)
        missing: Path | None = None
        if weights.lpips > 0:
            try:
                self.lpips = load_lpips(backbone, lpips_weights, device)
                self.uses_lpips = True
            except LpipsWeightsMissing as exc:
                missing = exc.path
                if weights.mse <= 0 and weights.ssim <= 0 and weights.face_ssim <= 0:
                    self.mse_weight = 1.0  # the fallback must still train on something
                _warn_lpips_missing(exc, "MSE + SSIM" if weights.ssim > 0 or weights.face_ssim > 0 else "MSE")
        self.description = describe(self.mse_weight, backbone if self.uses_lpips else None, weights.ssim, missing,
                                    weights.face_ssim)

    def forward(  # type: ignore[override]
        self, pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean", face: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return ``(total, terms)``; ``terms`` holds the unweighted loss terms ``mse``
        and, when used, ``lpips``, ``ssim`` (= 1 - SSIM) and ``face_ssim`` (= 1 - SSIM
        averaged with ``face``, the (B,1,H,W) face weights, which that term needs).
        With ``reduction="none"`` every value is (B,), with ``"mean"`` a scalar.
        Gradients flow to ``pred``."""
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 3:
            raise ValueError(f"expected pred and target of equal shape (B,3,H,W), got {tuple(pred.shape)} and {tuple(target.shape)}")
        terms: dict[str, torch.Tensor] = {"mse": ((pred - target) ** 2).mean(dim=(1, 2, 3))}
        total = self.mse_weight * terms["mse"]
        if self.uses_lpips and self.lpips is not None:
            terms["lpips"] = self.lpips(pred, target.to(pred.dtype))
            total = total + self.weights.lpips * terms["lpips"]
        if self.weights.ssim > 0:
            terms["ssim"] = 1.0 - ssim((pred + 1) / 2, (target + 1) / 2)
            total = total + self.weights.ssim * terms["ssim"]
        if self.weights.face_ssim > 0:
            if face is None:
                raise ValueError("the face SSIM term needs the batch's face weights (face=...)")
            terms["face_ssim"] = 1.0 - ssim((pred + 1) / 2, (target + 1) / 2, weight=face)
            total = total + self.weights.face_ssim * terms["face_ssim"]
        if reduction == "mean":
            return total.mean(), {key: value.mean() for key, value in terms.items()}
        return total, terms


def describe(
    mse_weight: float, lpips_backbone: str | None, ssim_weight: float, missing: Path | None, face_ssim_weight: float = 0.0
) -> str:
    """Human-readable summary, e.g. ``"mse + lpips(alex)"`` or ``"mse only (LPIPS backbone weights absent: P)"``."""
    parts = []
    if mse_weight > 0:
        parts.append("mse")
    if lpips_backbone is not None:
        parts.append(f"lpips({lpips_backbone})")
    if ssim_weight > 0:
        parts.append("ssim")
    if face_ssim_weight > 0:
        parts.append("face ssim")
    text = " + ".join(parts) if parts else "zero"
    if len(parts) == 1:
        text += " only"
    if missing is not None:
        text += f" (LPIPS backbone weights absent: {missing})"
    return text


def _warn_lpips_missing(exc: LpipsWeightsMissing, fallback: str) -> None:
    """Log the fallback warning once per process (later occurrences at INFO level)."""
    global _WARNED_LPIPS_MISSING
    if _WARNED_LPIPS_MISSING:
        log.info("LPIPS disabled (backbone weights absent: %s); using %s only", exc.path, fallback)
        return
    _WARNED_LPIPS_MISSING = True
    bar = "*" * 78
    log.warning(
        "\n%s\n*** LPIPS disabled: backbone weights not found at %s; training uses %s only.\n"
        "*** %s.\n*** Set %s in config.yaml (or fill the torch hub cache) to enable LPIPS.\n%s",
        bar, exc.path, fallback, exc, CONFIG_KEY, bar,
    )


def loss_from_config(config: dict, weights: LossWeights, device: str | torch.device = "cpu") -> PhotometricLoss:
    """Build the loss from ``config["lpips"]["backbone"/"weights"]`` (defaults: alex, torch hub cache)."""
    section = config.get("lpips") or {}
    if not isinstance(section, dict):
        raise HfagpError(f"config key 'lpips' must be a mapping with backbone/weights, got {section!r}")
    backbone = section.get("backbone") or "alex"
    path = section.get("weights")
    return PhotometricLoss(weights, lpips_backbone=backbone, lpips_weights=path, device=device)
