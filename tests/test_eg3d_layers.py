"""Unit tests of the small tensor functions behind hfagp.eg3d, each against an independent reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hfagp.eg3d import layers, renderer, triplane
from hfagp.eg3d.mapping import MappingNetwork


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


def zero_insert(x: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] -> [B,C,2H,2W] with x at even positions, zeros elsewhere."""
    b, c, h, w = x.shape
    out = torch.zeros(b, c, 2 * h, 2 * w, dtype=x.dtype)
    out[:, :, ::2, ::2] = x
    return out


def depthwise(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate every channel of x with a 2D kernel, no padding (loop over channels)."""
    return torch.cat([F.conv2d(x[:, i : i + 1], kernel[None, None]) for i in range(x.shape[1])], dim=1)


def test_fir_filter_is_normalised_and_separable():
    f = layers.fir_filter_2d()
    assert f.shape == (4, 4)
    assert torch.allclose(f.sum(), torch.tensor(1.0))
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8
    assert torch.allclose(f, taps[:, None] * taps[None, :])


def test_upsample2d_matches_zero_insertion_pad_filter():
    x = torch.randn(2, 5, 6, 7)
    reference = depthwise(F.pad(zero_insert(x), (2, 1, 2, 1)), layers.fir_filter_2d() * 4)
    out = layers.upsample2d(x)
    assert out.shape == (2, 5, 12, 14)
    torch.testing.assert_close(out, reference, atol=1e-6, rtol=1e-5)


def test_upsample2d_keeps_constant_interior():
    out = layers.upsample2d(torch.full((1, 2, 8, 8), 3.0))
    torch.testing.assert_close(out[..., 2:-2, 2:-2], torch.full_like(out[..., 2:-2, 2:-2], 3.0))


def test_fir_filter_pad1_matches_reference():
    x = torch.randn(1, 3, 9, 9)
    bias = torch.randn(3)
    reference = depthwise(F.pad(x, (1, 1, 1, 1)), layers.fir_filter_2d() * 4) + bias.reshape(1, -1, 1, 1)
    torch.testing.assert_close(layers.fir_filter_pad1(x, gain=4.0, bias=bias), reference, atol=1e-6, rtol=1e-5)


def reference_modulated_conv(x, weight, styles, noise=None, up=False, demodulate=True, bias=None, gain=1.0):
    """Per-sample loop: modulate, demodulate, (zero-insert + full conv + FIR), noise, bias, gain."""
    outs = []
    for i in range(x.shape[0]):
        w = weight * styles[i].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / torch.sqrt(w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        xi = x[i : i + 1]
        if up:
            # Transposed conv == zero insertion (with a trailing zero row/col trimmed), full padding,
            # flipped kernel; then the FIR filter with one pixel of padding.
            k = w.shape[-1]
            z = zero_insert(xi)[..., :-1, :-1]
            y = F.conv2d(F.pad(z, (k - 1,) * 4), w.flip([2, 3]))
            y = depthwise(F.pad(y, (1, 1, 1, 1)), layers.fir_filter_2d() * 4)
        else:
            y = F.conv2d(xi, w, padding=w.shape[-1] // 2)
        outs.append(y)
    y = torch.cat(outs)
    if noise is not None:
        y = y + noise
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y * gain


@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
def test_modulated_conv2d_matches_per_sample_reference(up, fused, batch):
    x = torch.randn(batch, 6, 8, 8)
    weight = torch.randn(5, 6, 3, 3)
    styles = torch.randn(batch, 6)
    noise = torch.randn(1, 1, 16 if up else 8, 16 if up else 8)
    bias = torch.randn(5)
    out = layers.modulated_conv2d(x, weight, styles, noise=noise, up=up, fused=fused, bias=bias, gain=math.sqrt(2))
    reference = reference_modulated_conv(x, weight, styles, noise=noise, up=up, bias=bias, gain=math.sqrt(2))
    assert out.shape == reference.shape
    torch.testing.assert_close(out, reference, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv2d_without_demodulation(fused):
    x = torch.randn(2, 4, 5, 5)
    weight = torch.randn(3, 4, 1, 1)
    styles = torch.randn(2, 4)
    bias = torch.randn(3)
    out = layers.modulated_conv2d(x, weight, styles, demodulate=False, fused=fused, bias=bias)
    reference = reference_modulated_conv(x, weight, styles, demodulate=False, bias=bias)
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)


def test_modulated_conv2d_gradients_fused_equal_unfused():
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    weight = torch.randn(3, 4, 3, 3, requires_grad=True)
    styles = torch.randn(2, 4, requires_grad=True)
    grads = []
    for fused in (True, False):
        out = layers.modulated_conv2d(x, weight, styles, up=True, fused=fused, bias=torch.ones(3), gain=2.0)
        grads.append(torch.autograd.grad(out.square().sum(), [x, weight, styles]))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_bias_act_lrelu_gain_clamp():
    x = torch.tensor([[-2.0, 0.5, 300.0]]).reshape(1, 3, 1)
    out = layers.bias_act(x, torch.tensor([1.0, 0.0, 0.0]), "lrelu", gain=math.sqrt(2), clamp=256)
    expected = torch.tensor([-1.0 * 0.2 * math.sqrt(2), 0.5 * math.sqrt(2), 256.0]).reshape(1, 3, 1)
    torch.testing.assert_close(out, expected)


def test_normalize_2nd_moment_gives_unit_mean_square():
    x = torch.randn(4, 512) * 7
    torch.testing.assert_close(layers.normalize_2nd_moment(x).square().mean(dim=1), torch.ones(4), atol=1e-5, rtol=0)


def test_fully_connected_equalised_learning_rate():
    fc = layers.FullyConnectedLayer(8, 4, activation="lrelu", lr_multiplier=0.01, bias_init=0.5)
    torch.testing.assert_close(fc.bias * 0.01, torch.full((4,), 0.5))
    x = torch.randn(3, 8)
    w = fc.weight * 0.01 / math.sqrt(8)
    expected = F.leaky_relu(x @ w.t() + fc.bias * 0.01, 0.2) * math.sqrt(2)
    torch.testing.assert_close(fc(x), expected, atol=1e-6, rtol=1e-5)
    linear = layers.FullyConnectedLayer(8, 4)
    torch.testing.assert_close(linear(x), x @ (linear.weight / math.sqrt(8)).t() + linear.bias, atol=1e-6, rtol=1e-5)


def test_synthesis_layer_equals_unfolded_formula():
    layer = layers.SynthesisLayer(6, 5, w_dim=16, resolution=8, conv_clamp=0.5)
    with torch.no_grad():
        layer.noise_strength.fill_(0.3)
        layer.bias.normal_()
    x, w = torch.randn(2, 6, 8, 8), torch.randn(2, 16)
    styles = layer.affine(w)
    raw = reference_modulated_conv(x, layer.weight, styles, noise=layer.noise_const * 0.3, bias=layer.bias)
    expected = (F.leaky_relu(raw, 0.2) * math.sqrt(2)).clamp(-0.5, 0.5)
    with torch.no_grad():
        torch.testing.assert_close(layer(x, w, noise_mode="const"), expected, atol=2e-5, rtol=1e-4)


def test_mapping_truncation_and_cutoff():
    mapping = MappingNetwork(z_dim=8, c_dim=3, w_dim=8, num_ws=5, num_layers=2)
    with torch.no_grad():
        mapping.w_avg.normal_()
    z, c = torch.randn(2, 8), torch.randn(2, 3)
    ws = mapping(z, c)
    assert ws.shape == (2, 5, 8)
    torch.testing.assert_close(ws[:, 0], ws[:, 4])
    half = mapping(z, c, truncation_psi=0.5)
    torch.testing.assert_close(half, mapping.w_avg + 0.5 * (ws - mapping.w_avg))
    cut = mapping(z, c, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], half[:, :2])
    torch.testing.assert_close(cut[:, 2:], ws[:, 2:])


# ---------------------------------------------------------------------------
# Renderer pieces.


def test_sample_rays_frontal_camera():
    cam2world = torch.tensor([[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 2.7], [0, 0, 0, 1.0]])[None]
    intrinsics = torch.tensor([[4.2647, 0, 0.5], [0, 4.2647, 0.5], [0, 0, 1.0]])[None]
    origins, directions = renderer.sample_rays(cam2world, intrinsics, 4)
    assert origins.shape == directions.shape == (1, 16, 3)
    torch.testing.assert_close(origins[0, 5], torch.tensor([0, 0, 2.7]))
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(1, 16))
    # Ray i*R+j goes through pixel centre ((j+.5)/R, (i+.5)/R); OpenCV y down -> world y up here.
    u, v = (1 + 0.5) / 4, (2 + 0.5) / 4
    expected = torch.tensor([(u - 0.5) / 4.2647, -(v - 0.5) / 4.2647, -1.0])
    torch.testing.assert_close(directions[0, 2 * 4 + 1], expected / expected.norm())


def reference_triplanes(planes: torch.Tensor, points: torch.Tensor, box_warp: float) -> torch.Tensor:
    """Official-style sampling: project with inv(axes), grid_sample each plane, mean."""
    n, n_planes, c, h, w = planes.shape
    coords = (2 / box_warp) * points
    inv_axes = torch.linalg.inv(triplane.PLANE_AXES)
    proj = torch.einsum("npk,qkl->nqpl", coords, inv_axes)[..., :2]  # [N, 3, P, 2]
    out = F.grid_sample(
        planes.reshape(n * n_planes, c, h, w), proj.reshape(n * n_planes, 1, -1, 2), align_corners=False
    )
    return out.reshape(n, n_planes, c, -1).mean(dim=1).permute(0, 2, 1)


@pytest.mark.parametrize("channels_last", [False, True])
def test_sample_triplanes_matches_grid_sample(channels_last):
    planes = torch.randn(2, 96, 16, 12)
    if channels_last:
        planes = planes.contiguous(memory_format=torch.channels_last)
    planes = planes.view(2, 3, 32, 16, 12)
    points = (torch.rand(2, 500, 3) - 0.5) * 1.3  # some outside the box -> zero padding
    out = triplane.sample_triplanes(planes, points, box_warp=1.0)
    torch.testing.assert_close(out, reference_triplanes(planes, points, 1.0), atol=1e-5, rtol=1e-5)


def test_sample_triplanes_gradient_matches_grid_sample():
    planes = torch.randn(1, 3, 4, 8, 8, requires_grad=True)
    points = (torch.rand(1, 200, 3) - 0.5) * 1.2
    g1 = torch.autograd.grad(triplane.sample_triplanes(planes, points, 1.0).square().sum(), planes)[0]
    g2 = torch.autograd.grad(reference_triplanes(planes, points, 1.0).square().sum(), planes)[0]
    torch.testing.assert_close(g1, g2, atol=1e-5, rtol=1e-5)


def test_marching_weights_against_loop():
    densities, depths = torch.randn(3, 7), torch.sort(torch.rand(3, 7) + 2, dim=-1).values
    weights = renderer.marching_weights(densities, depths)
    for r in range(3):
        transmittance = 1.0
        for i in range(6):
            sigma = F.softplus((densities[r, i] + densities[r, i + 1]) / 2 - 1)
            alpha = 1 - torch.exp(-sigma * (depths[r, i + 1] - depths[r, i]))
            torch.testing.assert_close(weights[r, i], alpha * transmittance, atol=1e-6, rtol=1e-5)
            transmittance = transmittance * (1 - alpha + 1e-10)


def test_sample_weights_composite_equals_midpoint_composite():
    weights, colors = torch.rand(4, 9), torch.rand(4, 10, 32)
    midpoints = (colors[:, :-1] + colors[:, 1:]) / 2
    expected = (weights[..., None] * midpoints).sum(1)
    per_sample = renderer.sample_weights_from_interval_weights(weights)
    torch.testing.assert_close((per_sample[..., None] * colors).sum(1), expected, atol=1e-5, rtol=1e-5)


def test_weighted_depth_and_global_clamp():
    depths = torch.tensor([[2.0, 2.5, 3.0], [2.2, 2.6, 3.2]])
    weights = torch.tensor([[0.5, 0.5], [0.0, 0.0]])
    torch.testing.assert_close(renderer.weighted_depth(weights, depths)[0], torch.tensor(2.5))
    assert torch.isinf(renderer.weighted_depth(weights, depths)[1])  # 0/0 -> NaN -> inf
    torch.testing.assert_close(renderer.composite_depth(weights, depths), torch.tensor([2.5, 3.2]))


def test_sample_pdf_follows_weights():
    bins = torch.linspace(0, 1, 11).expand(2, 11)
    weights = torch.zeros(2, 10)
    weights[0, 3] = 1.0  # all mass in bin [0.3, 0.4]
    weights[1] = 1.0  # uniform
    u = torch.rand(2, 1000)
    samples = renderer.sample_pdf(bins, weights, 1000, u)
    inside = ((samples[0] >= 0.3) & (samples[0] <= 0.4)).float().mean()
    assert inside > 0.99
    torch.testing.assert_close(samples[1], u[1], atol=1e-4, rtol=0)  # uniform pdf -> identity map
    det = renderer.sample_pdf(bins, weights, 5, None)
    torch.testing.assert_close(det[1], torch.linspace(0, 1, 5), atol=1e-4, rtol=0)


def test_smooth_importance_weights():
    weights = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    smoothed = renderer.smooth_importance_weights(weights)
    # max-pool(2,1,pad 1): [0,1,1,0,0]; avg-pool(2,1): [.5,1,.5,0]; + 0.01
    torch.testing.assert_close(smoothed, torch.tensor([[0.51, 1.01, 0.51, 0.01]]))


def test_chunked_rendering_gradients_equal_single_chunk(monkeypatch):
    """The chunks' gathers share one gradient sink; the result must not depend on the chunking."""
    decoder = triplane.OSGDecoder(32)
    planes = torch.randn(2, 3, 32, 16, 16, requires_grad=True)
    origins, directions = renderer.sample_rays(
        torch.tensor([[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 2.7], [0, 0, 0, 1.0]]).expand(2, 4, 4),
        torch.tensor([[4.2647, 0, 0.5], [0, 4.2647, 0.5], [0, 0, 1.0]]).expand(2, 3, 3),
        8,
    )
    options = dict(depth_resolution=6, depth_resolution_importance=6, ray_start=2.25, ray_end=3.3, box_warp=1)
    results = []
    for chunk_points in (10**6, 6 * 5):  # one chunk; then 5 rays per chunk
        monkeypatch.setattr(renderer, "CHUNK_POINTS", chunk_points)
        out = renderer.ImportanceRenderer()(planes, decoder, origins, directions, options, deterministic=True)
        loss = out.features.square().sum() + out.depth.sum()
        results.append((out.features, out.depth, *torch.autograd.grad(loss, [planes, *decoder.parameters()])))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert results[0][2].abs().sum() > 0
