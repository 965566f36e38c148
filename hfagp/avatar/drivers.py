"""Driver networks: a signal (RGB crop, expression coefficients, audio windows) -> the D subspace weights.

HFA-GP maps each training frame's driving signal to the weights of the
personal subspace (:mod:`hfagp.avatar.subspace`); the generator renders the latent
``delta + weights @ Q.T``. Three drivers (SPEC section 2):

* ``rgb``: :class:`RGBEncoder`, a StyleGAN2-discriminator-like conv encoder of the crop;
* ``expression``: :class:`ExpressionMLP` (the authors' ``Weights_3DMM``) on 3DMM expression coefficients;
* ``audio``: :class:`AudioDriver`, AD-NeRF's AudioNet (+ AudioAttNet smoothing) feeding an ExpressionMLP.

Output initialisation
---------------------
Every driver ends in an :class:`EqualLinear` whose weight is multiplied by
:data:`OUTPUT_INIT_SCALE` (0.1) at construction and whose bias is zero. An
equalised layer keeps the RMS of its input, and the hidden features have RMS
about that of the input signal, so the initial weights have std about 0.1
times the input's RMS (measured at D=50: ~0.02 for uniform crops in [-1,1],
~0.12 for unit-variance expression coefficients, ~0.01 for unit-variance audio
windows), i.e. training starts within a small fraction of a principal standard
deviation of the prior's mean latent. Only the initial value is
shrunk: the run-time scale (hence the effective learning rate) is the usual
equalised one, so the layer can grow at the normal speed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hfagp.errors import HfagpError

DRIVER_KINDS = ("rgb", "expression", "audio")

OUTPUT_INIT_SCALE = 0.1  # initial weight multiplier of every driver's last layer (see the module docstring)
LRELU_SLOPE = 0.2  # StyleGAN2's leaky ReLU
LRELU_GAIN = math.sqrt(2.0)  # ... times sqrt(2) to keep the second moment
AUDIO_SLOPE = 0.02  # AD-NeRF's leaky ReLU
BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)  # StyleGAN2's low-pass filter before each 2x down-sampling
# Encoder channels per feature-map resolution (HFA-GP / StyleGAN2 with channel multiplier 1).
ENCODER_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64}


def scaled_lrelu(x: torch.Tensor) -> torch.Tensor:
    """StyleGAN2's activation: leaky ReLU (slope 0.2) times sqrt(2)."""
    return F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN


def _shrink_(layer: "EqualLinear", scale: float) -> None:
    """Multiply ``layer``'s initial weight by ``scale`` and zero its bias (small initial driver output)."""
    with torch.no_grad():
        layer.weight.mul_(scale)
        if layer.bias is not None:
            layer.bias.zero_()


class EqualLinear(nn.Module):
    """StyleGAN2 equalised-learning-rate linear layer.

    The stored weight is N(0,1)/lr_mul and is multiplied by lr_mul/sqrt(in_dim)
    at run time (so the effective weight has std 1/sqrt(in_dim) and the
    learning rate is scaled by lr_mul); the bias (initialised to ``bias_init``)
    is multiplied by lr_mul. ``activation`` is None (linear) or ``'lrelu'``
    (leaky ReLU 0.2 times sqrt(2), after the bias).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        if activation not in (None, "lrelu"):
            raise HfagpError(f"EqualLinear activation must be None or 'lrelu', got {activation!r}")
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_dim) -> (..., out_dim)."""
        bias = None if self.bias is None else self.bias * self.lr_mul
        out = F.linear(x, self.weight * self.scale, bias)
        return scaled_lrelu(out) if self.activation == "lrelu" else out

    def extra_repr(self) -> str:
        """Shape, lr_mul and activation for ``print(module)``."""
        out_dim, in_dim = self.weight.shape
        return f"{in_dim}, {out_dim}, lr_mul={self.lr_mul}, activation={self.activation}"


class EqualConv2d(nn.Module):
    """Equalised-learning-rate 2D convolution (weight N(0,1) scaled by 1/sqrt(fan_in) at run time).

    ``down=True`` low-passes with the [1,3,3,1] blur and then convolves with
    stride 2 (StyleGAN2's down-sampling conv); otherwise ``padding`` (default
    kernel // 2, "same" for odd kernels). The bias (if any) is added after the
    convolution; ``activate`` then applies the scaled leaky ReLU.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        down: bool = False,
        bias: bool = True,
        activate: bool = True,
        padding: int | None = None,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.down = down
        self.activate = activate
        self.padding = 0 if down else (kernel // 2 if padding is None else padding)
        if down:  # blur padding so that a stride-2 conv of the blurred map gives exactly half the size
            taps = torch.tensor(BLUR_TAPS)
            blur = torch.outer(taps, taps)
            self.register_buffer("blur", (blur / blur.sum())[None, None], persistent=False)
            total = len(BLUR_TAPS) - 2 + kernel - 1
            self.blur_pad = ((total + 1) // 2, total // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_ch, H, W) -> (B, out_ch, H', W') with H' = H/2 when down-sampling."""
        stride = 1
        if self.down:
            lo, hi = self.blur_pad
            channels = x.shape[1]
            x = F.conv2d(F.pad(x, (lo, hi, lo, hi)), self.blur.expand(channels, 1, -1, -1), groups=channels)
            stride = 2
        out = F.conv2d(x, self.weight * self.scale, None, stride, self.padding)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return scaled_lrelu(out) if self.activate else out


class ResidualDown(nn.Module):
    """StyleGAN2 discriminator block: 3x3 conv, 3x3 down-sampling conv, plus a 1x1 down-sampled skip; sum / sqrt(2)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = EqualConv2d(in_ch, in_ch, 3)
        self.conv2 = EqualConv2d(in_ch, out_ch, 3, down=True)
        self.skip = EqualConv2d(in_ch, out_ch, 1, down=True, bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_ch, R, R) -> (B, out_ch, R/2, R/2)."""
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)


class RGBEncoder(nn.Module):
    """StyleGAN2-discriminator-like encoder of a crop (B,3,R,R) in [-1,1] -> (B, out_dim).

    fromRGB 1x1 conv at R, residual down-sampling blocks to 4x4 (channels
    :data:`ENCODER_CHANNELS` times ``width``, at least 8), a final 4x4 "valid"
    conv (no bias) to a 512*width vector (= flatten + linear of the 4x4 map,
    as in the authors' encoder), 4 EqualLinear 512->512 with the scaled leaky
    ReLU, and one EqualLinear -> out_dim (initial weight times
    :data:`OUTPUT_INIT_SCALE`). R is a power of two from 16 to 256. No
    minibatch-stddev: an encoder must treat the samples of a batch independently.
    """

    def __init__(self, out_dim: int, resolution: int = 256, width: float = 1.0) -> None:
        super().__init__()
        if resolution not in ENCODER_CHANNELS or resolution < 16:
            raise HfagpError(f"RGBEncoder resolution must be a power of two from 16 to 256, got {resolution}")
        if width <= 0:
            raise HfagpError(f"RGBEncoder width must be positive, got {width}")
        ch = {res: max(8, int(round(c * width))) for res, c in ENCODER_CHANNELS.items()}
        hidden = max(8, int(round(512 * width)))
        self.resolution = resolution
        self.from_rgb = EqualConv2d(3, ch[resolution], 1)
        blocks, res = [], resolution
        while res > 4:
            blocks.append(ResidualDown(ch[res], ch[res // 2]))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        self.to_vector = EqualConv2d(ch[4], hidden, 4, bias=False, activate=False, padding=0)  # 4x4 -> 1x1
        self.fc = nn.Sequential(*[EqualLinear(hidden, hidden, activation="lrelu") for _ in range(4)])
        self.out = EqualLinear(hidden, out_dim)
        _shrink_(self.out, OUTPUT_INIT_SCALE)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) in [-1, 1] -> (B, out_dim)."""
        r = self.resolution
        if image.ndim != 4 or tuple(image.shape[1:]) != (3, r, r):
            raise HfagpError(f"RGBEncoder expects (B, 3, {r}, {r}) crops, got {tuple(image.shape)}")
        x = self.to_vector(self.blocks(self.from_rgb(image))).flatten(1)
        return self.out(self.fc(x))


class ExpressionMLP(nn.Module):
    """HFA-GP's ``Weights_3DMM``: EqualLinear in->hidden (lrelu), ``layers`` x hidden->hidden (lrelu), hidden->out.

    The last layer's initial weight is multiplied by :data:`OUTPUT_INIT_SCALE`.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 512, layers: int = 5) -> None:
        super().__init__()
        self.in_dim = in_dim
        body = [EqualLinear(in_dim, hidden, activation="lrelu")]
        body += [EqualLinear(hidden, hidden, activation="lrelu") for _ in range(layers)]
        self.body = nn.Sequential(*body)
        self.out = EqualLinear(hidden, out_dim)
        _shrink_(self.out, OUTPUT_INIT_SCALE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> (B, out_dim)."""
        if x.shape[-1] != self.in_dim:
            raise HfagpError(f"ExpressionMLP expects {self.in_dim} input values per sample, got {tuple(x.shape)}")
        return self.out(self.body(x))


def _conv_stack(channels: list[int], stride: int) -> nn.Sequential:
    """Conv1d (kernel 3, padding 1, given stride) + LeakyReLU(0.02) between consecutive ``channels``."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv1d(c_in, c_out, 3, stride, 1), nn.LeakyReLU(AUDIO_SLOPE, True)]
    return nn.Sequential(*layers)


class AudioNet(nn.Module):
    """AD-NeRF's AudioNet: (B, 16, 29) DeepSpeech windows -> (B, dim_aud).

    Takes the middle ``win_size`` rows of the 16, puts the 29 features on the
    channel axis (B, 29, win), and runs four stride-2 Conv1d 29->32->32->64->64
    (kernel 3, padding 1, LeakyReLU 0.02): the length goes 16 -> 8 -> 4 -> 2 -> 1.
    Then Linear 64->64, LeakyReLU(0.02), Linear 64->dim_aud.
    """

    def __init__(self, dim_aud: int = 64, win_size: int = 16) -> None:
        super().__init__()
        if not 1 <= win_size <= 16:
            raise HfagpError(f"AudioNet win_size must be in 1..16, got {win_size}")
        self.win_size = win_size
        self.dim_aud = dim_aud
        self.conv = _conv_stack([29, 32, 32, 64, 64], stride=2)
        self.fc = nn.Sequential(nn.Linear(64, 64), nn.LeakyReLU(AUDIO_SLOPE, True), nn.Linear(64, dim_aud))

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """(B, 16, 29) -> (B, dim_aud)."""
        if window.ndim != 3 or tuple(window.shape[1:]) != (16, 29):
            raise HfagpError(f"AudioNet expects (B, 16, 29) feature windows, got {tuple(window.shape)}")
        half = self.win_size // 2
        x = window[:, 8 - half : 8 - half + self.win_size].transpose(1, 2)
        x = self.conv(x)  # (B, 64, 1) for win_size 16 (and any win_size <= 16: lengths round up to 1)
        return self.fc(x.squeeze(-1))


class AudioAttention(nn.Module):
    """AD-NeRF's AudioAttNet: (B, seq_len, dim_aud) -> (B, dim_aud), a softmax-weighted sum over the frames.

    Conv1d dim_aud->16->8->4->2->1 (kernel 3, stride 1, padding 1, LeakyReLU
    0.02) along the sequence gives one score per frame; Linear(seq_len,
    seq_len) + softmax turns them into weights (see :meth:`weights`).
    """

    def __init__(self, dim_aud: int = 64, seq_len: int = 8) -> None:
        super().__init__()
        self.dim_aud = dim_aud
        self.seq_len = seq_len
        self.conv = _conv_stack([dim_aud, 16, 8, 4, 2, 1], stride=1)
        self.fc = nn.Linear(seq_len, seq_len)

    def weights(self, features: torch.Tensor) -> torch.Tensor:
        """(B, seq_len, dim_aud) -> (B, seq_len) attention weights (non-negative, summing to 1)."""
        if features.ndim != 3 or tuple(features.shape[1:]) != (self.seq_len, self.dim_aud):
            raise HfagpError(
                f"AudioAttention expects (B, {self.seq_len}, {self.dim_aud}) features, got {tuple(features.shape)}"
            )
        scores = self.conv(features.transpose(1, 2)).squeeze(1)  # (B, seq_len)
        return torch.softmax(self.fc(scores), dim=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, seq_len, dim_aud) -> (B, dim_aud)."""
        return (self.weights(features).unsqueeze(-1) * features).sum(dim=1)


class AudioDriver(nn.Module):
    """AudioNet -> (optional AudioAttention over ``seq_len`` neighbouring frames) -> ExpressionMLP(dim_aud, out_dim).

    ``forward(windows, smooth)``: windows (B, S, 16, 29) with S = seq_len (the
    frame itself at index S//2) or (B, 16, 29). ``smooth=False`` uses only the
    middle window; ``smooth=True`` (requires S = seq_len) runs AudioNet on all S
    windows and combines the features with the attention.
    """

    def __init__(self, out_dim: int, dim_aud: int = 64, seq_len: int = 8) -> None:
        super().__init__()
        self.seq_len = seq_len
        self.audio = AudioNet(dim_aud)
        self.attention = AudioAttention(dim_aud, seq_len)
        self.mlp = ExpressionMLP(dim_aud, out_dim)

    def features(self, windows: torch.Tensor, smooth: bool = False) -> torch.Tensor:
        """The (B, dim_aud) audio feature fed to the MLP (see the class docstring)."""
        if windows.ndim == 3:
            if smooth:
                raise HfagpError(
                    f"AudioDriver smoothing needs (B, seq_len={self.seq_len}, 16, 29) windows, got one per sample"
                )
            return self.audio(windows)
        if windows.ndim != 4:
            raise HfagpError(f"AudioDriver expects (B, S, 16, 29) or (B, 16, 29) windows, got {tuple(windows.shape)}")
        if not smooth:
            return self.audio(windows[:, windows.shape[1] // 2])
        b, s = windows.shape[:2]
        if s != self.seq_len:
            raise HfagpError(f"AudioDriver smoothing needs {self.seq_len} windows per sample, got {s}")
        per_frame = self.audio(windows.reshape(b * s, *windows.shape[2:])).view(b, s, -1)
        return self.attention(per_frame)

    def forward(self, windows: torch.Tensor, smooth: bool = False) -> torch.Tensor:
        """(B, S, 16, 29) or (B, 16, 29) -> (B, out_dim)."""
        return self.mlp(self.features(windows, smooth))


def build_driver(
    kind: str,
    out_dim: int,
    *,
    input_dim: int | None = None,
    resolution: int = 256,
    width: float = 1.0,
    seq_len: int = 8,
) -> nn.Module:
    """The driver of ``kind`` (one of :data:`DRIVER_KINDS`) with ``out_dim`` outputs.

    'rgb' -> RGBEncoder(out_dim, resolution, width); 'expression' ->
    ExpressionMLP(input_dim, out_dim) (input_dim required: 10 for our fit, 76
    for NeRFace data); 'audio' -> AudioDriver(out_dim, seq_len=seq_len).
    """
    if out_dim < 1:
        raise HfagpError(f"driver output size (the subspace dimension) must be >= 1, got {out_dim}")
    if kind == "rgb":
        return RGBEncoder(out_dim, resolution, width)
    if kind == "expression":
        if input_dim is None or input_dim < 1:
            raise HfagpError(
                f"the expression driver needs input_dim (the number of expression coefficients), got {input_dim}"
            )
        return ExpressionMLP(input_dim, out_dim)
    if kind == "audio":
        return AudioDriver(out_dim, seq_len=seq_len)
    raise HfagpError(f"unknown driver kind {kind!r}; choose one of {', '.join(DRIVER_KINDS)}")
