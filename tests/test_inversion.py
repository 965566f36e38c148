"""W+ inversion: a latent rendered by the generator is recovered; schedule, cameras and the CLI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from hfagp.eg3d import camera
from hfagp.eg3d.camera import yaw_offset_label
from hfagp.losses.photometric import LossWeights, PhotometricLoss
from hfagp.prior.inversion import InversionSettings, frontal_labels, invert, lr_at, noise_at, render, w_statistics


class ToyGenerator(nn.Module):
    """A small smooth generator with EG3D's API whose latent is identifiable (more pixels than latent dims)."""

    z_dim, w_dim, num_ws, img_resolution = 8, 8, 2, 8

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.backbone = nn.Module()
        self.backbone.mapping = nn.Module()
        self.backbone.mapping.register_buffer("w_avg", torch.zeros(self.w_dim))
        self.map = nn.Parameter(torch.randn(self.z_dim, self.w_dim, generator=gen) / math.sqrt(self.z_dim))
        self.synth = nn.Parameter(torch.randn(self.num_ws * self.w_dim + 25, 3 * 64, generator=gen) * 0.15)

    def mapping(self, z, c):
        return (z @ self.map).unsqueeze(1).repeat(1, self.num_ws, 1)

    def synthesis(self, ws, c, noise_mode="const", deterministic=True):
        x = torch.cat([ws.flatten(1), c * 0.1], dim=1)
        return {"image": torch.tanh(x @ self.synth).reshape(-1, 3, 8, 8)}


def mse_loss():
    return PhotometricLoss(LossWeights(mse=1.0, lpips=0.0))


def test_toy_generator_latent_is_recovered_and_error_decreases():
    G = ToyGenerator()
    w_avg, w_std, source = w_statistics(G, samples=2000)
    assert "mean" in source and w_std > 0
    c = frontal_labels(3)
    w_true = G.mapping(torch.randn(3, 8, generator=torch.Generator().manual_seed(1)), c).detach()
    target = render(G, w_true, c).detach()
    errors = []
    settings = InversionSettings(steps=300, lr=0.05, noise_scale=0.05, batch_size=2)
    latents, history = invert(
        G, target, c, w_avg, w_std, mse_loss(), settings, callback=lambda step, ws: errors.append(ws), progress=False
    )
    assert latents.shape == (3, 2, 8)
    start = float((w_avg - w_true).norm(dim=-1).mean())
    final = float((latents - w_true).norm(dim=-1).mean())
    assert final < 0.1 * start
    table = pd.DataFrame(history)
    assert set(table.frame) == {0, 1, 2} and table.step.max() == 299
    first, last = table[table.step == 0].loss.mean(), table[table.step == 299].loss.mean()
    assert last < 1e-3 * first


def test_batched_inversion_equals_one_by_one():
    G = ToyGenerator()
    w_avg, w_std, _ = w_statistics(G, samples=500)
    c = frontal_labels(2)
    target = render(G, G.mapping(torch.randn(2, 8), c), c).detach()
    settings = dict(steps=20, lr=0.05, noise_scale=0.0)
    together, _ = invert(G, target, c, w_avg, w_std, mse_loss(), InversionSettings(batch_size=2, **settings), progress=False)
    alone, _ = invert(G, target, c, w_avg, w_std, mse_loss(), InversionSettings(batch_size=1, **settings), progress=False)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_demo_generator_reproduces_an_image_it_rendered():
    from hfagp import eg3d

    torch.set_num_threads(2)
    G = eg3d.demo_generator(0)
    G.requires_grad_(False)
    w_avg, w_std, _ = w_statistics(G, samples=1000)
    c = frontal_labels(1)
    w_true = G.mapping(torch.randn(1, 512, generator=torch.Generator().manual_seed(5)), c).detach()
    with torch.no_grad():
        target = render(G, w_true, c)
        start = float(((render(G, w_avg.reshape(1, 1, -1).repeat(1, 14, 1), c) - target) ** 2).mean())
    settings = InversionSettings(steps=12, lr=0.01, batch_size=1)
    latents, history = invert(G, target, c, w_avg, w_std, mse_loss(), settings, seed=0, progress=False)
    with torch.no_grad():
        final = float(((render(G, latents, c) - target) ** 2).mean())
    assert latents.shape == (1, 14, 512) and latents.dtype == torch.float32
    assert final < 0.25 * start, (start, final)


def test_learning_rate_and_noise_schedules():
    lrs = [lr_at(s, 100, 0.01, 0.05, 0.25) for s in range(100)]
    assert 0 < lrs[0] < 0.01 and max(lrs) == pytest.approx(0.01) and lrs[-1] < 1e-3
    assert lrs[10:75] == [pytest.approx(0.01)] * 65
    assert lr_at(0, 10, 0.01, 0.0, 0.0) == 0.01
    assert noise_at(0, 100, 2.0, 0.05) == pytest.approx(0.1) and noise_at(80, 100, 2.0, 0.05) == 0


def test_yaw_offset_keeps_distance_and_turns_about_the_pivot():
    label = camera.camera_label(camera.look_at_cam2world(5.0, -3.0))
    turned = yaw_offset_label(label, 20.0)
    c0, c1 = label[:16].reshape(4, 4), turned[:16].reshape(4, 4)
    p = camera.CAMERA_PIVOT
    assert np.linalg.norm(c1[:3, 3] - p) == pytest.approx(np.linalg.norm(c0[:3, 3] - p))
    np.testing.assert_allclose(c1[:3, :3] @ c1[:3, :3].T, np.eye(3), atol=1e-12)
    a, b = c0[[0, 2], 3] - p[[0, 2]], c1[[0, 2], 3] - p[[0, 2]]
    angle = math.degrees(math.atan2(b[0], b[1]) - math.atan2(a[0], a[1]))
    assert angle == pytest.approx(20.0)
    np.testing.assert_array_equal(turned[16:], label[16:])
