"""hfagp.evaluate.metrics: PSNR, SSIM, L1, AKD and LPIPS loading against known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from hfagp.evaluate import metrics


def image(seed: int = 0, shape=(48, 64, 3)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.2, 0.8, size=shape)


def test_identical_images():
    a = image()
    assert metrics.psnr(a, a) == math.inf
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    assert metrics.l1(a, a) == 0.0


def test_psnr_of_known_gaussian_noise():
    rng = np.random.default_rng(1)
    a = np.full((128, 128, 3), 0.5)
    sigma = 0.05
    noise = rng.normal(0.0, sigma, a.shape)  # |noise| < 0.3: no clipping needed
    b = a + noise
    realised = 10 * math.log10(1.0 / np.mean(noise**2))
    assert metrics.psnr(a, b) == pytest.approx(realised, abs=1e-9)
    assert abs(metrics.psnr(a, b) - 20 * math.log10(1 / sigma)) < 0.1
    assert metrics.psnr(a * 255, b * 255, data_range=255.0) == pytest.approx(realised, abs=1e-9)


def test_ssim_matches_skimage_reference():
    a, b = image(0), image(1)
    b = 0.5 * a + 0.5 * b
    reference = structural_similarity(
        a, b, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert metrics.ssim(a, b) == pytest.approx(reference, abs=1e-12)
    assert 0.0 < metrics.ssim(a, b) < 1.0


def test_l1_known_value_and_uint8_conversion():
    a = np.zeros((8, 8, 3))
    b = np.full((8, 8, 3), 0.25)
    assert metrics.l1(a, b) == pytest.approx(0.25)
    assert metrics.to_unit(np.full((2, 2, 3), 255, np.uint8)).max() == 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        metrics.psnr(image(shape=(8, 8, 3)), image(shape=(8, 9, 3)))
    with pytest.raises(ValueError):
        metrics.l1(np.zeros((8, 8)), np.zeros((8, 8)))


def test_akd():
    points = np.random.default_rng(2).uniform(0, 100, (68, 2))
    assert metrics.akd(points, points + [3.0, 4.0]) == pytest.approx(5.0)
    assert metrics.akd(points, points.reshape(-1)) == 0.0
    assert math.isnan(metrics.akd(points, None))
    assert math.isnan(metrics.akd(None, points))
    broken = points.copy()
    broken[5] = np.nan
    assert math.isnan(metrics.akd(points, broken))


def test_summarize_skips_nonfinite():
    stats = metrics.summarize([1.0, 3.0, math.inf, math.nan])
    assert stats == {"mean": 2.0, "std": 1.0, "count": 2, "nonfinite": 2}
    assert metrics.summarize([math.nan])["mean"] is None


def test_lpips_absent_gives_reason_not_number(tmp_path):
    missing = tmp_path / "alexnet-owt-7be5be79.pth"
    scorer = metrics.LpipsScorer("alex", missing)
    assert not scorer.available
    assert scorer.description == "n/a: backbone weights absent"
    assert str(missing) in scorer.reason
    assert scorer(image(), image(1)) is None
    model, reason = metrics.lpips_or_none("alex", missing)
    assert model is None and "alexnet-owt-7be5be79.pth" in reason


def test_lpips_with_seeded_backbone(tmp_path):
    import torch

    from hfagp.losses.lpips import seeded_backbone_state

    path = tmp_path / "alex.pth"
    torch.save(seeded_backbone_state("alex", 0), path)
    scorer = metrics.LpipsScorer("alexnet", path)
    assert scorer.available and scorer.description == "alex"
    a, b = image(0, (64, 64, 3)), image(1, (64, 64, 3))
    assert scorer(a, a) == pytest.approx(0.0, abs=1e-6)
    assert scorer(a, b) > 0.0
