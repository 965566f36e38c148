"""Driver networks (hfagp.avatar.drivers): shapes, gradients, scales, AudioNet/attention behaviour, parameter counts."""

from __future__ import annotations

import math

import pytest
import torch

from hfagp.avatar.drivers import (
    DRIVER_KINDS,
    AudioAttention,
    AudioDriver,
    AudioNet,
    EqualLinear,
    ExpressionMLP,
    RGBEncoder,
    build_driver,
)
from hfagp.errors import HfagpError

D = 20


def n_params(module: torch.nn.Module) -> int:
    """Number of trainable values."""
    return sum(p.numel() for p in module.parameters())


def assert_all_grads(module: torch.nn.Module, output: torch.Tensor) -> None:
    """Backpropagate a random projection of ``output`` and check every parameter got a non-zero gradient."""
    module.zero_grad()
    (output * torch.randn_like(output)).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.abs().sum() > 0, f"{name} got a zero gradient"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------- EqualLinear


def test_equal_linear_effective_weight_scale():
    layer = EqualLinear(400, 300, lr_mul=0.01, bias_init=1.0)
    assert layer.weight.std().item() == pytest.approx(100.0, rel=0.02)  # stored N(0,1)/lr_mul
    effective = layer.weight * layer.scale
    assert layer.scale == pytest.approx(0.01 / math.sqrt(400))
    assert effective.std().item() == pytest.approx(1 / math.sqrt(400), rel=0.02)
    x = torch.randn(5, 400)
    expected = x @ effective.T + layer.bias * 0.01
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(layer(x)[0] - x[0] @ effective.T, torch.full((300,), 0.01))


def test_equal_linear_lrelu_and_no_bias():
    layer = EqualLinear(8, 4, bias=False, activation="lrelu")
    assert layer.bias is None
    x = torch.randn(3, 8)
    pre = x @ (layer.weight * layer.scale).T
    torch.testing.assert_close(layer(x), torch.where(pre > 0, pre, 0.2 * pre) * math.sqrt(2))
    with pytest.raises(HfagpError, match="activation"):
        EqualLinear(8, 4, activation="relu")


def test_equal_linear_keeps_rms():
    layer = EqualLinear(512, 512)
    x = torch.randn(256, 512)
    assert layer(x).pow(2).mean().sqrt().item() == pytest.approx(1.0, rel=0.1)


# ---------------------------------------------------------------- RGB encoder


@pytest.mark.parametrize("resolution,width", [(16, 0.125), (32, 0.125), (64, 0.25), (128, 0.0625)])
def test_rgb_encoder_shapes_and_grads(resolution, width):
    enc = RGBEncoder(D, resolution, width)
    out = enc(torch.rand(2, 3, resolution, resolution) * 2 - 1)
    assert out.shape == (2, D)
    assert torch.isfinite(out).all()
    assert_all_grads(enc, out)


def test_rgb_encoder_full_size_forward():
    enc = RGBEncoder(D, 256, 1.0).eval()
    with torch.no_grad():
        out = enc(torch.rand(1, 3, 256, 256) * 2 - 1)
    assert out.shape == (1, D)


def test_rgb_encoder_parameter_count():
    # RGBEncoder(out_dim=50, 256, width 1): 22,711,922 parameters =
    #   256 fromRGB + 17,441,088 in the 6 residual blocks + 4,194,304 in the 4x4 conv (512*512*16)
    #   + 1,050,624 in the 4 x EqualLinear(512, 512) + 25,650 in EqualLinear(512, 50).
    # i.e. ~22.7M (+513 per extra output), below the ~28M quoted for HFA-GP's encoder; a 3x3 final conv
    # + flatten + Linear(8192, 512) instead of the 4x4 conv would add 2.36M (~25.1M).
    enc = RGBEncoder(50, 256, 1.0)
    assert n_params(enc) == 22_711_922
    # width scales the channels: ~1/16 of the parameters at width 0.25
    assert n_params(RGBEncoder(50, 128, 0.25)) < 2_000_000


def test_rgb_encoder_samples_are_independent():
    enc = RGBEncoder(D, 32, 0.125)
    x = torch.rand(3, 3, 32, 32)
    torch.testing.assert_close(enc(x)[1:2], enc(x[1:2]), atol=1e-5, rtol=1e-5)


def test_rgb_encoder_rejects_bad_input():
    with pytest.raises(HfagpError, match="power of two"):
        RGBEncoder(D, 48)
    with pytest.raises(HfagpError, match="power of two"):
        RGBEncoder(D, 8)
    with pytest.raises(HfagpError, match=r"\(B, 3, 32, 32\)"):
        RGBEncoder(D, 32, 0.125)(torch.zeros(1, 3, 64, 64))


def test_rgb_initial_output_is_small():
    enc = RGBEncoder(50, 64, 0.25)
    with torch.no_grad():
        out = enc(torch.rand(16, 3, 64, 64) * 2 - 1)
    assert out.std().item() < 0.15


# ---------------------------------------------------------------- expression MLP


@pytest.mark.parametrize("in_dim", [10, 76])
def test_expression_mlp_shapes_and_grads(in_dim):
    mlp = ExpressionMLP(in_dim, D)
    assert len(mlp.body) == 6  # in->512 and 5 x 512->512
    out = mlp(torch.randn(4, in_dim))
    assert out.shape == (4, D)
    assert_all_grads(mlp, out)
    with pytest.raises(HfagpError, match=f"{in_dim} input values"):
        mlp(torch.randn(4, in_dim + 1))


def test_expression_initial_output_is_small():
    mlp = ExpressionMLP(76, 50)
    with torch.no_grad():
        out = mlp(torch.randn(256, 76))
    assert 0.02 < out.std().item() < 0.15


# ---------------------------------------------------------------- audio


def conv_out_len(length: int, kernel: int = 3, stride: int = 2, padding: int = 1) -> int:
    """Conv1d output length floor((L + 2p - k) / s) + 1."""
    return (length + 2 * padding - kernel) // stride + 1


def test_audionet_reduces_16_windows_to_one_vector():
    lengths = [16]
    for _ in range(4):
        lengths.append(conv_out_len(lengths[-1]))
    assert lengths == [16, 8, 4, 2, 1]  # (16+2-3)//2+1 = 8, (8-1)//2+1 = 4, 2, 1
    net = AudioNet(64)
    x = torch.randn(5, 16, 29)
    conv = net.conv(x.transpose(1, 2))
    assert conv.shape == (5, 64, lengths[-1])
    out = net(x)
    assert out.shape == (5, 64)
    assert_all_grads(net, out)
    # per-sample: the batch does not mix
    torch.testing.assert_close(net(x[2:3]), out[2:3], atol=1e-6, rtol=1e-5)


def test_audionet_reads_the_time_axis():
    # layout check: (B, 16, 29) is time x features; the features are the conv channels
    net = AudioNet(64)
    assert net.conv[0].in_channels == 29
    with pytest.raises(HfagpError, match=r"\(B, 16, 29\)"):
        net(torch.randn(2, 29, 16))


def test_attention_weights_sum_to_one():
    att = AudioAttention(64, 8)
    feats = torch.randn(3, 8, 64)
    w = att.weights(feats)
    assert w.shape == (3, 8)
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones(3))
    out = att(feats)
    torch.testing.assert_close(out, (w[..., None] * feats).sum(1))
    assert_all_grads(att, out)


@pytest.mark.parametrize("seq_len", [8, 5])
def test_audio_driver_shapes_with_and_without_smoothing(seq_len):
    drv = AudioDriver(D, seq_len=seq_len)
    windows = torch.randn(2, seq_len, 16, 29)
    plain = drv(windows, smooth=False)
    smooth = drv(windows, smooth=True)
    single = drv(windows[:, seq_len // 2])
    assert plain.shape == smooth.shape == single.shape == (2, D)
    torch.testing.assert_close(plain, single)
    assert_all_grads(drv, smooth)  # every parameter, attention included


def test_smoothing_identical_windows_equals_plain_feature():
    drv = AudioDriver(D)
    one = torch.randn(3, 16, 29)
    windows = one[:, None].expand(3, 8, 16, 29).contiguous()
    torch.testing.assert_close(drv.features(windows, smooth=True), drv.features(one), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(drv(windows, smooth=True), drv(windows, smooth=False), atol=1e-6, rtol=1e-5)


def test_audio_driver_rejects_bad_windows():
    drv = AudioDriver(D)
    with pytest.raises(HfagpError, match="8 windows"):
        drv(torch.randn(2, 5, 16, 29), smooth=True)
    with pytest.raises(HfagpError, match="seq_len"):
        drv(torch.randn(2, 16, 29), smooth=True)


# ---------------------------------------------------------------- factory


def test_build_driver():
    assert DRIVER_KINDS == ("rgb", "expression", "audio")
    assert isinstance(build_driver("rgb", D, resolution=32, width=0.125), RGBEncoder)
    mlp = build_driver("expression", D, input_dim=10)
    assert isinstance(mlp, ExpressionMLP) and mlp.in_dim == 10
    audio = build_driver("audio", D, seq_len=4)
    assert isinstance(audio, AudioDriver) and audio.seq_len == 4
    with pytest.raises(HfagpError, match="input_dim"):
        build_driver("expression", D)
    with pytest.raises(HfagpError, match="unknown driver kind 'pose'.*rgb, expression, audio"):
        build_driver("pose", D)
