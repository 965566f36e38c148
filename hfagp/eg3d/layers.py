"""StyleGAN2 building blocks used by the EG3D generator, as plain PyTorch.

Everything here is a small, differentiable tensor function or module with the
parameter names of the official networks (``weight``, ``bias``,
``noise_strength``, ``noise_const``, ``resample_filter``, ``affine``), so an
official ``state_dict`` loads strictly. No custom CUDA ops are needed: the
FIR resampling is written with ``conv2d``/``conv_transpose2d``, which are fast
on both CPU and CUDA.

Conventions (spec/eg3d.md section 1):

* Equalised learning rate: a stored weight ``W`` is used as
  ``W * lr_multiplier / sqrt(fan_in)``, a stored bias ``b`` as
  ``b * lr_multiplier``.
* ``lrelu`` is a leaky ReLU of slope 0.2 followed by a gain of sqrt(2).
* The resampling filter is ``[1,3,3,1] x [1,3,3,1] / 64``; upsampling by two
  multiplies it by 4 so the image keeps its mean.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
DEMODULATION_EPS = 1e-8
FIR_TAPS_1D = (1.0, 3.0, 3.0, 1.0)


def fir_filter_2d() -> torch.Tensor:
    """The separable 4x4 low-pass filter ``[1,3,3,1] x [1,3,3,1] / 64`` (sums to 1)."""
    taps = torch.tensor(FIR_TAPS_1D, dtype=torch.float32)
    kernel = taps[:, None] * taps[None, :]
    return kernel / kernel.sum()


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str = "linear",
    gain: float = 1.0,
    clamp: float | None = None,
) -> torch.Tensor:
    """Add a per-channel bias (channel dim 1), apply ``linear``/``lrelu``, scale by ``gain``, clamp.

    ``gain`` multiplies after the activation; ``lrelu`` callers pass sqrt(2)
    (times any extra layer gain). ``clamp`` limits the result to [-clamp, clamp].
    """
    if bias is not None:
        shape = [1, -1] + [1] * (x.ndim - 2)
        x = x + bias.to(x.dtype).reshape(shape)
    if activation == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    elif activation != "linear":
        raise ValueError(f"unsupported activation {activation!r}")
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row of ``x`` [B, C] to unit mean square: ``x * rsqrt(mean(x^2) + eps)``."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def can_modify_inplace(x: torch.Tensor) -> bool:
    """True when ``x`` is outside any autograd graph, so in-place ops cannot corrupt saved tensors.

    Fresh large allocations are expensive on CPU (page faults), so layers update
    their own outputs in place whenever autograd allows it.
    """
    return not (torch.is_grad_enabled() and x.requires_grad)


def _depthwise_fir_kernel(channels: int, gain: float, like: torch.Tensor) -> torch.Tensor:
    kernel = (fir_filter_2d() * gain).to(device=like.device, dtype=like.dtype)
    return kernel[None, None].expand(channels, 1, 4, 4).contiguous(memory_format=torch.channels_last)


def upsample2d(x: torch.Tensor) -> torch.Tensor:
    """Upsample ``x`` [B, C, H, W] by 2 with the FIR filter: zero insertion, pad (2,1), 4x4 filter at gain 4.

    Written as one depthwise transposed convolution (stride 2, padding 1) whose
    kernel is ``4 * fir_filter_2d()``; that is the same linear map as
    upfirdn2d(up=2), output [B, C, 2H, 2W].
    """
    return F.conv_transpose2d(x, _depthwise_fir_kernel(x.shape[1], 4.0, x), stride=2, padding=1, groups=x.shape[1])


def fir_filter_pad1(x: torch.Tensor, gain: float = 4.0, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Pad ``x`` by one zero pixel per side, apply the 4x4 FIR filter times ``gain``, add ``bias``.

    This is the filter that follows the stride-2 transposed convolution of an
    upsampling conv layer: [B, C, 2H+1, 2W+1] -> [B, C, 2H, 2W].
    """
    return F.conv2d(x, _depthwise_fir_kernel(x.shape[1], gain, x), bias=bias, padding=1, groups=x.shape[1])


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: bool = False,
    demodulate: bool = True,
    fused: bool = True,
    bias: torch.Tensor | None = None,
    gain: float = 1.0,
) -> torch.Tensor:
    """StyleGAN2 modulated convolution: ``gain * (conv(x, weight * styles) * demod + noise + bias)``.

    Stride 1 with 'same' padding, or 2x upsampling (transposed conv stride 2,
    then the FIR filter) when ``up``. ``gain`` and ``bias`` are folded into the
    convolution (the activation that follows, leaky ReLU, commutes with a
    positive gain), which saves full passes over the activations.

    Args:
        x: input [B, I, H, W].
        weight: shared kernel [O, I, k, k] (k odd).
        styles: per-sample input scales [B, I].
        noise: added after the convolution and demodulation (broadcast to [B, O, H', W']).
        up: upsample by 2, output 2H x 2W.
        demodulate: divide each output channel by ``sqrt(sum((w * s)^2) + 1e-8)``.
        fused: scale the weights per sample (one grouped conv) instead of scaling
            activations before/after one shared conv. Same maths; the official code
            uses fused in eval mode and unfused in train mode (they agree to ~3e-6).
        bias: per-output-channel bias [O], added after the noise.
        gain: positive scale of the whole result.
    """
    batch, in_channels = x.shape[:2]
    out_channels, _, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise so fp16 products cannot overflow; demodulation undoes the scale.
        weight = weight * (
            1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    # Per-sample weights [B, O, I, k, k] (needed to demodulate, and by the fused form).
    w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1) if demodulate or fused else None
    # Per-sample, per-output-channel scale: demodulation coefficients times gain.
    scale: torch.Tensor | None = None
    if demodulate:
        scale = (w.square().sum(dim=[2, 3, 4]) + DEMODULATION_EPS).rsqrt()
        if gain != 1:
            scale = scale * gain
    # The bias can ride inside the (last) convolution unless noise must come first.
    conv_bias = None
    if bias is not None and noise is None:
        conv_bias = bias.to(x.dtype) * gain if gain != 1 else bias.to(x.dtype)

    if fused:
        if scale is not None:
            w = w * scale.reshape(batch, -1, 1, 1, 1)
        elif gain != 1:
            w = w * gain
        w = w.to(x.dtype)
        if batch == 1:
            x = _conv(x, w[0], up=up, groups=1, bias=conv_bias)
        else:
            x = x.reshape(1, batch * in_channels, *x.shape[2:])
            grouped_bias = conv_bias.repeat(batch) if conv_bias is not None else None
            x = _conv(x, w.reshape(batch * out_channels, in_channels, kh, kw), up=up, groups=batch, bias=grouped_bias)
            x = x.reshape(batch, out_channels, *x.shape[2:])
        bias_added = conv_bias is not None
    else:
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        shared_weight = weight.to(x.dtype)
        if scale is None:
            x = _conv(x, shared_weight * gain if gain != 1 else shared_weight, up=up, groups=1, bias=conv_bias)
            bias_added = conv_bias is not None
        else:
            x = _conv(x, shared_weight, up=up, groups=1)
            per_channel = scale.to(x.dtype).reshape(batch, -1, 1, 1)
            x = x.mul_(per_channel) if can_modify_inplace(x) else x * per_channel
            bias_added = False

    inplace = can_modify_inplace(x)
    if noise is not None:
        noise = noise.to(x.dtype) * gain if gain != 1 else noise.to(x.dtype)
        x = x.add_(noise) if inplace else x + noise
    if bias is not None and not bias_added:
        b = (bias.to(x.dtype) * gain if gain != 1 else bias.to(x.dtype)).reshape(1, -1, 1, 1)
        x = x.add_(b) if inplace else x + b
    return x


def _conv(x: torch.Tensor, weight: torch.Tensor, up: bool, groups: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """'Same' convolution, or stride-2 transposed convolution followed by the FIR filter when ``up``.

    ``weight`` is [groups * O, I, k, k] in cross-correlation orientation (as stored).
    Activations are kept channels-last: oneDNN runs those convolutions 1.3-3x faster.
    """
    kh = weight.shape[-1]
    x = x.contiguous(memory_format=torch.channels_last)
    if not up:
        return F.conv2d(x, weight.contiguous(memory_format=torch.channels_last), bias, padding=kh // 2, groups=groups)
    out_total, in_per_group = weight.shape[:2]
    out_per_group = out_total // groups
    # conv_transpose2d wants [groups * I, O, k, k]: swap the in/out axes inside each group.
    w_t = (
        weight.reshape(groups, out_per_group, in_per_group, kh, kh)
        .transpose(1, 2)
        .reshape(groups * in_per_group, out_per_group, kh, kh)
        .contiguous(memory_format=torch.channels_last)
    )
    x = F.conv_transpose2d(x, w_t, stride=2, groups=groups)
    return fir_filter_pad1(x, gain=4.0, bias=bias)


class _LeakyReluClampInplace(torch.autograd.Function):
    """``clamp(leaky_relu(x), -c, c)`` in place, with a backward computed from the output alone.

    Two in-place ops in a row cannot both save their result for autograd, and
    the out-of-place pair costs four extra passes over the largest activations
    of the super-resolution; this needs one pass forward and two backward.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, clamp: float) -> torch.Tensor:  # type: ignore[override]
        F.leaky_relu(x, LRELU_SLOPE, inplace=True)
        x.clamp_(-clamp, clamp)
        ctx.mark_dirty(x)
        ctx.save_for_backward(x)
        ctx.clamp = clamp
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (out,) = ctx.saved_tensors
        # leaky_relu keeps the sign, so the output tells which branch was taken;
        # outputs at +-clamp were clamped (exact ties have measure zero).
        grad = torch.ops.aten.leaky_relu_backward(grad, out, LRELU_SLOPE, True)
        return torch.ops.aten.hardtanh_backward(grad, out, -ctx.clamp, ctx.clamp), None


def leaky_relu_clamp_(x: torch.Tensor, clamp: float) -> torch.Tensor:
    """In-place ``clamp(leaky_relu(x, 0.2), -clamp, clamp)``; differentiable when ``x`` is a fresh tensor."""
    if can_modify_inplace(x):
        return F.leaky_relu(x, LRELU_SLOPE, inplace=True).clamp_(-clamp, clamp)
    return _LeakyReluClampInplace.apply(x, clamp)


class FullyConnectedLayer(nn.Module):
    """Equalised-learning-rate linear layer with optional ``lrelu``.

    Stored ``weight`` [out, in] is ``randn / lr_multiplier`` at init and used as
    ``weight * lr_multiplier / sqrt(in)``; stored ``bias`` is ``bias_init / lr_multiplier``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init) / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = float(lr_multiplier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        x = x.matmul(w.t())
        gain = LRELU_GAIN if self.activation == "lrelu" else 1.0
        return bias_act(x, b, self.activation, gain=gain)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally upsampling 2x) + noise + bias + lrelu (+ clamp)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", fir_filter_2d())
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True, gain: float = 1.0
    ) -> torch.Tensor:
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = (
                torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
                * self.noise_strength
            )
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        elif noise_mode not in ("none", "random", "const"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        # lrelu(g * y) = g * lrelu(y) for g > 0, so the activation gain is folded into the conv.
        x = modulated_conv2d(
            x, self.weight, styles, noise=noise, up=self.up == 2, fused=fused_modconv, bias=self.bias,
            gain=LRELU_GAIN * gain,
        )
        # In place is safe even under autograd: nothing saved the fresh conv output.
        if self.conv_clamp is None:
            return F.leaky_relu(x, LRELU_SLOPE, inplace=True)
        return leaky_relu_clamp_(x, self.conv_clamp * gain)

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}, resolution={self.resolution}, up={self.up}"


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation, plus bias (the 'skip' image branch)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused_modconv, bias=self.bias)
        if self.conv_clamp is not None:
            x = x.clamp_(-self.conv_clamp, self.conv_clamp) if can_modify_inplace(x) else x.clamp(
                -self.conv_clamp, self.conv_clamp
            )
        return x
