"""hfagp.losses.geometry.ray_distortion (the Mip-NeRF 360 distortion loss) and its place in the renderer."""

from __future__ import annotations

import pytest
import torch

from hfagp.losses.geometry import ray_distortion


def brute_force_distortion(weights: torch.Tensor, depths: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """The paper's double sum written out (O(S^2)), on normalised distances."""
    s = (depths - near) / (far - near)
    mids = (s[..., 1:] + s[..., :-1]) / 2
    lengths = s[..., 1:] - s[..., :-1]
    pairwise = (weights[..., :, None] * weights[..., None, :] * (mids[..., :, None] - mids[..., None, :]).abs()).sum((-1, -2))
    return pairwise + (weights**2 * lengths).sum(-1) / 3


def test_matches_the_double_sum_on_random_rays():
    generator = torch.Generator().manual_seed(0)
    depths, _ = torch.sort(2.25 + 1.05 * torch.rand(64, 25, generator=generator, dtype=torch.float64), dim=-1)
    weights = torch.rand(64, 24, generator=generator, dtype=torch.float64)
    weights = weights / weights.sum(-1, keepdim=True) * torch.rand(64, 1, generator=generator, dtype=torch.float64)
    expected = brute_force_distortion(weights, depths, 2.25, 3.3)
    assert torch.allclose(ray_distortion(weights, depths, 2.25, 3.3), expected, rtol=1e-12, atol=1e-14)


def test_closed_forms():
    """Weight spread evenly over the range: the integral of |s - t| over the unit square, 1/3, for any
    partition. All weight in one interval of normalised length l: l / 3."""
    depths = torch.tensor([2.25, 2.3, 2.6, 2.61, 3.0, 3.3], dtype=torch.float64)
    even = (depths[1:] - depths[:-1]) / (3.3 - 2.25)
    assert float(ray_distortion(even, depths, 2.25, 3.3)) == pytest.approx(1 / 3, abs=1e-12)
    one = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    assert float(ray_distortion(one, depths, 2.25, 3.3)) == pytest.approx(0.01 / 1.05 / 3, abs=1e-12)
    # the same weight split between two distant intervals costs far more than in one
    split = torch.tensor([0.5, 0.0, 0.0, 0.0, 0.5], dtype=torch.float64)
    assert float(ray_distortion(split, depths, 2.25, 3.3)) > 10 * float(ray_distortion(one, depths, 2.25, 3.3))


def test_gradient_gathers_the_weight():
    """A gradient step on the distortion moves weight from the far-apart intervals towards one another."""
    depths = torch.linspace(2.25, 3.3, 13, dtype=torch.float64)
    logits = torch.zeros(12, dtype=torch.float64, requires_grad=True)
    start = float(ray_distortion(torch.softmax(logits.detach(), 0), depths, 2.25, 3.3))
    optimiser = torch.optim.SGD([logits], lr=5.0)
    for _ in range(50):
        optimiser.zero_grad()
        ray_distortion(torch.softmax(logits, 0), depths, 2.25, 3.3).backward()
        optimiser.step()
    assert float(ray_distortion(torch.softmax(logits.detach(), 0), depths, 2.25, 3.3)) < 0.3 * start


def test_bad_shapes_and_range():
    with pytest.raises(ValueError, match="S-1 interval weights"):
        ray_distortion(torch.ones(3, 4), torch.ones(3, 4), 0.0, 1.0)
    with pytest.raises(ValueError, match="far must exceed near"):
        ray_distortion(torch.ones(3), torch.ones(4), 1.0, 1.0)


def test_the_generator_reports_each_rays_distortion(monkeypatch):
    """synthesis(ray_distortion=True) adds ``ray_distortion`` per neural-rendering pixel, equal to the double sum
    on the rays' own marching weights; the official outputs (checked against the official code by
    test_eg3d_conformance) are the same with it and without it, and without it the term is not computed."""
    from hfagp.eg3d import renderer as rendering
    from hfagp.eg3d.snapshot import random_generator

    torch.manual_seed(0)
    G = random_generator("demo", 0)
    ws = torch.randn(2, G.num_ws, 512) * 0.3
    from hfagp.eg3d.camera import camera_label, look_at_cam2world

    c = torch.from_numpy(camera_label(look_at_cam2world(10.0, 0.0))).float()[None].repeat(2, 1)
    recorded = {"weights": [], "depths": []}
    original = rendering.ray_distortion

    def spy(weights, depths, near, far):
        recorded["weights"].append(weights)
        recorded["depths"].append(depths)
        return original(weights, depths, near, far)

    monkeypatch.setattr(rendering, "ray_distortion", spy)
    with torch.no_grad():
        out = G.synthesis(ws, c, noise_mode="const", deterministic=True, ray_distortion=True)
    nrr = G.neural_rendering_resolution
    assert out["ray_distortion"].shape == (2, 1, nrr, nrr)
    weights, depths = torch.cat(recorded["weights"]), torch.cat(recorded["depths"])
    expected = brute_force_distortion(weights.double(), depths.double(), 2.25, 3.3).reshape(2, 1, nrr, nrr)
    assert torch.allclose(out["ray_distortion"].double(), expected, atol=1e-6)
    assert float(out["ray_distortion"].min()) >= 0 and float(out["ray_distortion"].max()) <= 1 / 3 + 1e-6
    calls = len(recorded["weights"])
    with torch.no_grad():
        plain = G.synthesis(ws, c, noise_mode="const", deterministic=True)
    assert len(recorded["weights"]) == calls, "computed without being asked for"
    assert set(plain) == {"image", "image_raw", "image_depth"}
    assert all(torch.equal(plain[k], out[k]) for k in plain)


def test_training_with_the_distortion_term_gathers_each_rays_weight(tmp_path):
    """At small scale (a tiny subject, 12 steps, the random-init generator tuned from step 0), the same run with
    ``distortion_weight`` > 0 must leave the avatar's rays clearly more concentrated than without it; the
    photometric terms still train (the loss falls)."""
    from test_training import make_subject, paths_for, tiny_settings

    from hfagp.avatar.distributed import setup_distributed
    from hfagp.avatar.training import Trainer

    torch.set_num_threads(2)
    subject = make_subject(tmp_path / "subject", frames=8)
    distortion = {}
    for weight in (0.0, 1.0):
        settings = tiny_settings("expression", steps=12, tune_iter=0, batch_size=2, lr=1e-3, generator_lr=3e-3,
                                 ema_decay=0.0, distortion_weight=weight)
        trainer = Trainer(settings, paths_for(subject, tmp_path / f"w{weight}"), setup_distributed("cpu"))
        trainer.run()
        batch = trainer.train_set.batch(list(range(len(trainer.train_set))))
        with torch.no_grad():
            _, rays = trainer.model(batch["signal"], batch["label"], deterministic=True, with_distortion=True)
        distortion[weight] = float(rays.mean())
        history = trainer.history
        assert history[-1]["mse"] < history[0]["mse"], history
        if weight:
            assert "distortion" in history[-1] and "ray distortion" in trainer.loss_description
    assert distortion[1.0] < 0.7 * distortion[0.0], distortion  # measured: 0.051 vs 0.116
