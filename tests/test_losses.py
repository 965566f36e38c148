"""hfagp.losses.photometric: MSE + LPIPS (+ SSIM), and the loud MSE fallback when LPIPS weights are absent."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from hfagp.errors import HfagpError
from hfagp.losses import photometric as losses
from hfagp.losses.lpips import seeded_backbone_state
from hfagp.losses.photometric import LossWeights, PhotometricLoss, loss_from_config, ssim


@pytest.fixture(scope="module")
def alex_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lpips") / "alexnet-owt-7be5be79.pth"
    torch.save(seeded_backbone_state("alex", 0), path)
    return path


@pytest.fixture
def warnings_log(monkeypatch):
    """Fresh once-per-process flag and a handler collecting hfagp.losses.photometric records."""
    monkeypatch.setattr(losses, "_WARNED_LPIPS_MISSING", False)
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.DEBUG)
    logger = logging.getLogger("hfagp.losses")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def pair(seed: int, shape=(2, 3, 64, 64)) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=shape).astype(np.float32)
    y = np.clip(x + 0.3 * rng.standard_normal(shape), -1, 1).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


def test_loss_weights_validation():
    assert LossWeights() == LossWeights(mse=1.0, lpips=1.0, ssim=0.0)
    with pytest.raises(HfagpError, match="lpips"):
        LossWeights(lpips=-1.0)
    with pytest.raises(HfagpError, match="ssim"):
        LossWeights(ssim=float("nan"))


def test_with_lpips(alex_file, warnings_log):
    loss = PhotometricLoss(LossWeights(mse=1.0, lpips=0.5), "alex", alex_file)
    assert loss.uses_lpips and loss.description == "mse + lpips(alex)"
    assert all(not p.requires_grad for p in loss.parameters())
    pred, target = pair(0)
    pred.requires_grad_(True)
    total, terms = loss(pred, target, reduction="none")
    assert set(terms) == {"mse", "lpips"} and total.shape == (2,)
    assert all(v.shape == (2,) for v in terms.values())
    assert torch.allclose(terms["mse"], ((pred - target) ** 2).mean(dim=(1, 2, 3)))
    assert torch.allclose(total, terms["mse"] + 0.5 * terms["lpips"])
    mean_total, mean_terms = loss(pred, target)
    assert mean_total.dim() == 0 and all(v.dim() == 0 for v in mean_terms.values())
    assert torch.allclose(mean_total, total.mean())
    mean_total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    loss.train()
    assert not loss.lpips.training
    assert warnings_log == []


def test_identical_images_give_zero(alex_file):
    loss = PhotometricLoss(LossWeights(mse=1.0, lpips=1.0, ssim=1.0), "alex", alex_file)
    assert loss.description == "mse + lpips(alex) + ssim"
    x, _ = pair(1)
    total, terms = loss(x, x)
    assert abs(total.item()) < 1e-6 and set(terms) == {"mse", "lpips", "ssim"}


def test_missing_backbone_falls_back_to_mse_with_one_loud_warning(tmp_path, warnings_log):
    missing = tmp_path / "absent" / "alexnet-owt-7be5be79.pth"
    loss = PhotometricLoss(LossWeights(), "alex", missing)
    assert not loss.uses_lpips and loss.lpips is None
    assert loss.description == f"mse only (LPIPS backbone weights absent: {missing})"
    pred, target = pair(2)
    total, terms = loss(pred, target, reduction="none")
    assert set(terms) == {"mse"} and torch.allclose(total, terms["mse"])
    PhotometricLoss(LossWeights(ssim=0.5), "vgg", missing)
    warnings = [r for r in warnings_log if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "LPIPS disabled" in text and str(missing) in text and "lpips.weights" in text and "***" in text


def test_missing_backbone_with_only_lpips_weight_still_trains_on_mse(tmp_path, warnings_log):
    loss = PhotometricLoss(LossWeights(mse=0.0, lpips=1.0), "alex", tmp_path / "none.pth")
    pred, target = pair(3)
    total, terms = loss(pred, target)
    assert torch.allclose(total, terms["mse"]) and total.item() > 0
    assert loss.description.startswith("mse only")


def test_lpips_weight_zero_loads_nothing(tmp_path, warnings_log):
    loss = PhotometricLoss(LossWeights(lpips=0.0, ssim=0.25), "alex", tmp_path / "none.pth")
    assert loss.description == "mse + ssim" and not loss.uses_lpips
    pred, target = pair(4)
    total, terms = loss(pred, target)
    assert set(terms) == {"mse", "ssim"}
    assert torch.allclose(total, terms["mse"] + 0.25 * terms["ssim"])
    assert warnings_log == []


def scipy_ssim(x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Independent SSIM: scipy Gaussian filter (sigma 1.5, 11 taps), borders cropped, float64; ``weight`` (H, W)
    makes the mean over pixels a weighted one (cropped like the map)."""
    def blur(a):
        return gaussian_filter(a, sigma=1.5, truncate=3.34)[5:-5, 5:-5]

    vals = []
    for c in range(x.shape[0]):
        a, b = x[c].astype(np.float64), y[c].astype(np.float64)
        ma, mb = blur(a), blur(b)
        saa, sbb, sab = blur(a * a) - ma**2, blur(b * b) - mb**2, blur(a * b) - ma * mb
        c1, c2 = 0.01**2, 0.03**2
        value = (2 * ma * mb + c1) * (2 * sab + c2) / ((ma**2 + mb**2 + c1) * (saa + sbb + c2))
        vals.append(value.mean() if weight is None else np.average(value, weights=weight[5:-5, 5:-5]))
    return float(np.mean(vals))


def test_ssim_against_scipy_and_closed_form():
    x, y = pair(5, (2, 3, 40, 33))
    x01, y01 = (x + 1) / 2, (y + 1) / 2
    ours = ssim(x01, y01)
    for i in range(2):
        assert abs(ours[i].item() - scipy_ssim(x01[i].numpy(), y01[i].numpy())) < 1e-5
    assert torch.allclose(ssim(x01, x01), torch.ones(2), atol=1e-6)
    a, b = 0.3, 0.7  # constant images: SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    const = ssim(torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b))
    assert abs(const.item() - (2 * a * b + 1e-4) / (a * a + b * b + 1e-4)) < 1e-5


def test_weighted_ssim_against_scipy():
    x, y = pair(8, (2, 3, 40, 33))
    x01, y01 = (x + 1) / 2, (y + 1) / 2
    weight = torch.rand((2, 1, 40, 33), generator=torch.Generator().manual_seed(3))
    ours = ssim(x01, y01, weight=weight)
    for i in range(2):
        reference = scipy_ssim(x01[i].numpy(), y01[i].numpy(), weight[i, 0].double().numpy())
        assert abs(ours[i].item() - reference) < 1e-5
    assert torch.allclose(ssim(x01, y01, weight=torch.ones(2, 1, 40, 33)), ssim(x01, y01), atol=1e-6)
    with pytest.raises(ValueError, match="weight must be"):
        ssim(x01, y01, weight=torch.ones(2, 3, 40, 33))


def test_the_face_ssim_term_acts_on_the_face_only():
    loss = PhotometricLoss(LossWeights(mse=0.0, lpips=0.0, face_ssim=1.0))
    assert loss.description == "face ssim only"
    x, y = pair(9, (1, 3, 48, 48))
    face = torch.zeros(1, 1, 48, 48)
    face[..., 20:28, 20:28] = 1.0
    x.requires_grad_(True)
    total, terms = loss(x, y, face=face)
    assert set(terms) == {"mse", "face_ssim"} and torch.equal(total, terms["face_ssim"])
    total.backward()
    # Only windows centred on the face move the loss: their 11 x 11 support ends 5 px beyond it.
    reach = torch.zeros(48, 48, dtype=torch.bool)
    reach[15:33, 15:33] = True
    assert x.grad[..., ~reach].abs().max() == 0 and x.grad[..., 20:28, 20:28].abs().sum() > 0
    with pytest.raises(ValueError, match="face weights"):
        loss(x, y)
    both = PhotometricLoss(LossWeights(mse=1.0, lpips=0.0, ssim=0.3, face_ssim=0.3))
    assert both.description == "mse + ssim + face ssim"


def test_ssim_gradient():
    x, y = pair(6, (1, 3, 32, 32))
    x.requires_grad_(True)
    (1 - ssim((x + 1) / 2, (y + 1) / 2)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_loss_from_config(alex_file, tmp_path, warnings_log):
    loss = loss_from_config({"lpips": {"backbone": "alex", "weights": str(alex_file)}}, LossWeights(), "cpu")
    assert loss.uses_lpips
    loss = loss_from_config({"lpips": {"weights": None}}, LossWeights(lpips=0.0), "cpu")
    assert loss.description == "mse only"
    loss = loss_from_config({}, LossWeights(lpips=0.0), "cpu")
    assert not loss.uses_lpips
    with pytest.raises(HfagpError, match="resnet"):
        loss_from_config({"lpips": {"backbone": "resnet"}}, LossWeights(), "cpu")


def test_bad_reduction(alex_file):
    loss = PhotometricLoss(LossWeights(lpips=0.0))
    x, y = pair(7)
    with pytest.raises(ValueError):
        loss(x, y, reduction="sum")
