"""hfagp.evaluate.metrics: PSNR, SSIM, L1, AKD, LMD and LPIPS loading, against known values and the reference tools."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from media import demo_frames
from reference_tools import basicsr_metrics
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from hfagp.evaluate import metrics, protocol


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


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]


def photograph_pairs():
    """(name, clean, distorted) uint8 RGB pairs of real photographs and a real face crop."""
    face = cv2.resize(demo_frames(1)[0][12:116, 34:138], (512, 512), interpolation=cv2.INTER_CUBIC)
    pairs = []
    for name, rgb in (("astronaut", data.astronaut()), ("coffee", data.coffee()), ("chelsea", data.chelsea()),
                      ("carphone_face", face)):
        pairs.append((f"{name}_jpeg", rgb, jpeg(rgb, 30)))
        pairs.append((f"{name}_blur", rgb, cv2.GaussianBlur(rgb, (0, 0), 1.5)))
    return pairs


PAIRS = photograph_pairs()


@pytest.mark.parametrize("name,clean,distorted", PAIRS, ids=[p[0] for p in PAIRS])
def test_psnr_ssim_l1_equal_the_reference_tools(name, clean, distorted):
    """RGB and Y (protocol colour ``y``) against scikit-image and basicsr on real photographs."""
    basicsr = basicsr_metrics()
    a, b = clean.astype(np.float64) / 255.0, distorted.astype(np.float64) / 255.0
    bgr_a, bgr_b = clean[..., ::-1].astype(np.float64), distorted[..., ::-1].astype(np.float64)
    ours = metrics.psnr(a, b)
    assert ours == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-9)
    assert ours == pytest.approx(basicsr.calculate_psnr(bgr_a, bgr_b, crop_border=0), abs=1e-9)
    ours = metrics.ssim(a, b)
    assert ours == pytest.approx(structural_similarity(a, b, channel_axis=-1, data_range=1.0, gaussian_weights=True,
                                                       sigma=1.5, use_sample_covariance=False), abs=1e-12)
    assert ours == pytest.approx(basicsr.calculate_ssim(bgr_a, bgr_b, crop_border=0), abs=1e-6)
    assert metrics.l1(a, b) == pytest.approx(np.abs(clean.astype(float) - distorted).mean() / 255.0, abs=1e-12)

    ya, yb = protocol.luma(a), protocol.luma(b)
    assert metrics.psnr(ya, yb) == pytest.approx(
        basicsr.calculate_psnr(bgr_a, bgr_b, crop_border=0, test_y_channel=True), abs=1e-4)
    assert metrics.ssim(ya, yb) == pytest.approx(
        basicsr.calculate_ssim(bgr_a, bgr_b, crop_border=0, test_y_channel=True), abs=1e-5)


def test_lmd_is_the_mean_centred_mouth_distance():
    rng = np.random.default_rng(3)
    truth = rng.uniform(100, 400, size=(68, 2))
    render = truth + rng.normal(0, 2, size=(68, 2))
    mouth_r, mouth_t = render[48:68], truth[48:68]
    expected = np.mean([math.dist(r - mouth_r.mean(axis=0), t - mouth_t.mean(axis=0)) for r, t in zip(mouth_r, mouth_t)])
    assert metrics.lmd(render, truth) == pytest.approx(expected, abs=1e-12)
    # head translation does not count; a wider mouth does; points outside the mouth do not
    assert metrics.lmd(render + [30.0, -12.0], truth) == pytest.approx(metrics.lmd(render, truth), abs=1e-9)
    assert metrics.lmd(truth + [5.0, 5.0], truth) == pytest.approx(0.0, abs=1e-12)
    wide = truth.copy()
    wide[48:68, 0] = truth[48:68, 0].mean() + 1.5 * (truth[48:68, 0] - truth[48:68, 0].mean())
    assert metrics.lmd(wide, truth) > 1.0
    moved = truth.copy()
    moved[:48] += 50.0
    assert metrics.lmd(moved, truth) == 0.0 and metrics.akd(moved, truth) > 30.0
    assert math.isnan(metrics.lmd(None, truth)) and math.isnan(metrics.lmd(truth, None))
    with pytest.raises(ValueError):
        metrics.lmd(truth[:60], truth[:60])


def test_one_channel_images():
    a, b = image(0)[..., :1], image(1)[..., :1]
    assert metrics.psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0))
    assert 0 < metrics.ssim(a, b) < 1
