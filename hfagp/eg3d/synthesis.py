"""The StyleGAN2 "skip" synthesis network that EG3D uses to produce its tri-planes.

EG3D's backbone always synthesises at 256x256 with ``3 * 32 = 96`` output
channels, whatever the final image size, which is why there are 14 ws.
Blocks run 4, 8, ..., 256; block ``b4`` starts from a learned constant. Each
block has ``conv0`` (upsampling 2x, except in the first block and in the
"no-up" blocks of the super-resolution module), ``conv1`` and ``torgb``; the
image branch is ``img = upsample2d(img) + torgb(x)``.

ws are consumed with overlap: block k reads ``ws[i : i + num_conv + num_torgb]``
and ``i`` advances by ``num_conv``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import SynthesisLayer, ToRGBLayer, fir_filter_2d, upsample2d
from .mapping import MappingNetwork
from .precision import block_dtype


def resolve_fused_modconv(
    fused_modconv: bool | str | None, default: bool | str, training: bool, batch_size: int
) -> bool:
    """Turn the official ``fused_modconv`` setting into a bool.

    Officially ``'inference_only'`` means fused (per-sample weights, one grouped
    conv) in eval mode and unfused (scale activations, one shared conv) in train
    mode. The two forms agree to ~3e-6, so we pick the faster one: fused only for
    a single sample in eval mode (a plain conv); for batches the shared conv is
    ~25% faster on CPU, and in train mode it also has the faster backward.
    An explicit ``True``/``False`` is obeyed.
    """
    value = default if fused_modconv is None else fused_modconv
    if value == "inference_only":
        return not training and batch_size == 1
    return bool(value)


class SynthesisBlock(nn.Module):
    """One resolution level: (const | conv0) -> conv1 -> torgb, with the skip image branch.

    ``upsample=False`` gives the official ``SynthesisBlockNoUp`` used by the
    2X/4X super-resolution modules: conv0 keeps the resolution and the
    incoming image is not upsampled.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        use_fp16: bool = False,
        conv_clamp: float | None = None,
        fused_modconv_default: bool | str = True,
        upsample: bool = True,
        use_noise: bool = True,
    ) -> None:
        super().__init__()
        if architecture != "skip":
            raise ValueError(f"only the 'skip' architecture is used by EG3D, got {architecture!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.is_last = is_last
        self.use_fp16 = use_fp16
        self.fused_modconv_default = fused_modconv_default
        self.upsample = upsample
        self.num_conv = 0
        self.num_torgb = 0
        self.register_buffer("resample_filter", fir_filter_2d())
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim=w_dim,
                resolution=resolution,
                up=2 if upsample else 1,
                use_noise=use_noise,
                conv_clamp=conv_clamp,
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim=w_dim, resolution=resolution, use_noise=use_noise, conv_clamp=conv_clamp
        )
        self.num_conv += 1
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        self.num_torgb += 1

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        force_fp32: bool = False,
        fused_modconv: bool | str | None = None,
        noise_mode: str = "random",
        update_emas: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the block on features ``x`` and image ``img`` with ``ws`` [B, num_conv + num_torgb, w_dim]."""
        del update_emas  # accepted for API compatibility; blocks keep no running statistics
        w_iter = iter(ws.unbind(dim=1))
        # Reduced precision only on CUDA by default, as the official code does (hfagp.eg3d.precision).
        dtype = block_dtype(self.use_fp16, force_fp32, ws.device)
        fused = resolve_fused_modconv(fused_modconv, self.fused_modconv_default, self.training, ws.shape[0])

        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).expand(ws.shape[0], -1, -1, -1).contiguous(
                memory_format=torch.channels_last
            )
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused)
        else:
            assert x is not None
            x = x.to(dtype=dtype, memory_format=torch.channels_last)
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused)

        y = self.torgb(x, next(w_iter), fused_modconv=fused).to(torch.float32)
        if img is None:
            img = y
        elif self.upsample:
            # The upsampled image is a fresh tensor nobody saved: accumulate in place.
            img = upsample2d(img.contiguous(memory_format=torch.channels_last)).add_(y)
        else:
            img = img + y
        return x, img

    def extra_repr(self) -> str:
        return (
            f"in={self.in_channels}, out={self.out_channels}, resolution={self.resolution}, "
            f"upsample={self.upsample}, use_fp16={self.use_fp16}"
        )


class SynthesisNetwork(nn.Module):
    """StyleGAN2 synthesis network with blocks ``b4 ... b{img_resolution}`` ("skip" architecture)."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        **block_kwargs,
    ) -> None:
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        img_resolution_log2 = int(math.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(2, img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (img_resolution_log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            block = SynthesisBlock(
                in_channels,
                channels[res],
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                is_last=res == img_resolution,
                use_fp16=res >= fp16_resolution,
                **block_kwargs,
            )
            self.num_ws += block.num_conv
            if res == img_resolution:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, **block_kwargs) -> torch.Tensor:
        """ws [B, num_ws, w_dim] -> image [B, img_channels, img_resolution, img_resolution]."""
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block: SynthesisBlock = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, **block_kwargs)
        assert img is not None
        return img


class StyleGAN2Backbone(nn.Module):
    """Mapping + synthesis, named like the official ``backbone`` (keys ``synthesis.*`` then ``mapping.*``)."""

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: dict | None = None,
        **synthesis_kwargs,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, num_ws=self.num_ws, **(mapping_kwargs or {}))

    def forward(self, z, c, truncation_psi=1.0, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)
