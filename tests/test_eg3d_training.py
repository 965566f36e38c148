"""Gradients, train-mode steps, deterministic rendering and the demo generator (small random-init config)."""

from __future__ import annotations

import logging

import pytest
import torch

from hfagp import eg3d
from hfagp.eg3d import demo


def frontal_label(batch: int = 1, yaw: float = 0.0) -> torch.Tensor:
    """EG3D label of a camera at radius 2.7 looking at the pivot [0, 0, 0.2], rotated by ``yaw`` radians."""
    import math

    pivot = torch.tensor([0.0, 0.0, 0.2])
    position = pivot + 2.7 * torch.tensor([math.sin(yaw), 0.0, math.cos(yaw)])
    forward = (pivot - position) / (pivot - position).norm()
    down = torch.tensor([0.0, -1.0, 0.0])
    right = torch.linalg.cross(down, forward)
    cam2world = torch.eye(4)
    cam2world[:3, 0], cam2world[:3, 1], cam2world[:3, 2], cam2world[:3, 3] = right, down, forward, position
    intrinsics = torch.tensor([4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1])
    return torch.cat([cam2world.flatten(), intrinsics]).expand(batch, 25).clone()


@pytest.fixture()
def G() -> eg3d.TriPlaneGenerator:
    generator = eg3d.demo_generator(seed=0)
    with torch.no_grad():  # make the volume visibly opaque so the renderer's gradients are not ~0
        generator.decoder.net[2].bias[0] += 2.0
    return generator


def test_demo_generator_shapes_and_warning(caplog):
    logger = logging.getLogger("hfagp.eg3d")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="hfagp.eg3d"):
            G = eg3d.demo_generator(seed=0)
    finally:
        logger.removeHandler(caplog.handler)
    assert "random-init demo generator, no pretrained prior" in caplog.text
    assert any(record.levelno == logging.WARNING for record in caplog.records)
    assert G.neural_rendering_resolution == eg3d.DEMO_NEURAL_RENDERING_RESOLUTION == 32
    with torch.no_grad():
        ws = G.mapping(torch.randn(2, 512), frontal_label(2))
        out = G.synthesis(ws, frontal_label(2), noise_mode="const")
    assert ws.shape == (2, 14, 512)
    assert out["image"].shape == (2, 3, 128, 128)
    assert out["image_raw"].shape == (2, 3, 32, 32)
    assert out["image_depth"].shape == (2, 1, 32, 32)
    assert all(torch.isfinite(v).all() for v in out.values())
    depth = out["image_depth"]
    assert depth.min() >= 2.25 and depth.max() <= 3.3 + 1.05 / 11


def test_demo_generator_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    a = eg3d.demo_generator(seed=1)
    after = torch.rand(3)
    b = eg3d.demo_generator(seed=1)
    c = eg3d.demo_generator(seed=2)
    torch.testing.assert_close(after, expected)
    assert torch.equal(a.backbone.synthesis.b4.const, b.backbone.synthesis.b4.const)
    assert not torch.equal(a.backbone.synthesis.b4.const, c.backbone.synthesis.b4.const)


def test_generator_from_config_without_checkpoint_is_the_demo():
    G = demo.generator_from_config(None)
    assert G.img_resolution == 128 and G.neural_rendering_resolution == 32


def test_deterministic_mode_is_repeatable_and_draws_nothing(G):
    ws = G.mapping(torch.randn(1, 512), frontal_label()).detach()
    c = frontal_label(yaw=0.3)
    with torch.no_grad():
        torch.manual_seed(0)
        a = G.synthesis(ws, c, noise_mode="const", deterministic=True)
        after_a = torch.rand(1)
        torch.manual_seed(1)
        G.deterministic_rendering = True
        b = G.synthesis(ws, c, noise_mode="const")
        G.deterministic_rendering = False
        torch.manual_seed(0)
        jittered = G.synthesis(ws, c, noise_mode="const")
    torch.manual_seed(0)
    assert torch.equal(after_a, torch.rand(1))  # deterministic synthesis consumed no random numbers
    for key in ("image", "image_raw", "image_depth"):
        assert torch.equal(a[key], b[key]), key
    assert (a["image_raw"] - jittered["image_raw"]).abs().max() > 1e-4


def test_gradients_reach_ws_and_every_parameter(G):
    G.train()
    z, c = torch.randn(2, 512), frontal_label(2, yaw=0.2)
    ws = G.mapping(z, c)
    ws.retain_grad()
    out = G.synthesis(ws, c, noise_mode="const")
    loss = out["image"].square().mean() + out["image_raw"].square().mean() + out["image_depth"].mean()
    loss.backward()
    assert ws.grad is not None and torch.isfinite(ws.grad).all() and ws.grad.abs().sum() > 0
    for name, param in G.named_parameters():
        if name.startswith("superresolution.") and name.endswith("noise_strength"):
            # The SR always runs with superresolution_noise_mode='none' (as the official
            # code does), so its noise strengths never enter the graph.
            assert param.grad is None, name
            continue
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_train_step_reduces_loss(G):
    G.train()
    ws = G.mapping(torch.randn(1, 512), frontal_label()).detach().requires_grad_(True)
    c = frontal_label()
    target = torch.zeros(1, 3, 128, 128)
    optimizer = torch.optim.Adam([ws, *G.parameters()], lr=1e-3)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = (G.synthesis(ws, c, noise_mode="const", deterministic=True)["image"] - target).square().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("batch", [1, 2])
def test_fused_and_unfused_modconv_agree_in_both_modes(G, batch):
    ws = G.mapping(torch.randn(batch, 512), frontal_label(batch)).detach()
    c = frontal_label(batch, yaw=-0.2)
    outputs = []
    with torch.no_grad():
        for training in (False, True):
            G.train(training)
            for fused in (None, True, False):  # None = the 'inference_only' default
                outputs.append(G.synthesis(ws, c, noise_mode="const", deterministic=True, fused_modconv=fused))
    for other in outputs[1:]:
        for key in other:
            torch.testing.assert_close(other[key], outputs[0][key], atol=1e-4, rtol=0)


def test_force_fp32_and_fused_modconv_kwargs_are_accepted(G):
    ws = G.mapping(torch.randn(1, 512), frontal_label()).detach()
    with torch.no_grad():
        a = G.synthesis(ws, frontal_label(), noise_mode="const", deterministic=True)
        b = G.synthesis(ws, frontal_label(), noise_mode="const", deterministic=True, force_fp32=True, fused_modconv=False)
    torch.testing.assert_close(a["image"], b["image"], atol=1e-4, rtol=0)


def test_passing_nrr_sets_it_and_changes_raw_size(G):
    ws = G.mapping(torch.randn(1, 512), frontal_label()).detach()
    with torch.no_grad():
        out = G.synthesis(ws, frontal_label(), neural_rendering_resolution=16, noise_mode="const")
    assert G.neural_rendering_resolution == 16
    assert out["image_raw"].shape[-1] == 16 and out["image"].shape[-1] == 128


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fp16_superresolution_close_to_fp32(G):
    G = G.cuda()
    ws = G.mapping(torch.randn(1, 512, device="cuda"), frontal_label().cuda()).detach()
    with torch.no_grad():
        half = G.synthesis(ws, frontal_label().cuda(), noise_mode="const", deterministic=True)
        full = G.synthesis(ws, frontal_label().cuda(), noise_mode="const", deterministic=True, force_fp32=True)
    assert half["image"].dtype == torch.float32
    assert (half["image"] - full["image"]).abs().max() < 0.05
