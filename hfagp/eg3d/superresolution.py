"""EG3D's "hybrid" super-resolution modules: the neural rendering -> final image.

Each module takes the raw RGB (first 3 feature channels), the 32-channel
feature image and the ws; it uses the last w three times, resizes its inputs
to the module's input resolution (bilinear, antialiased, only when needed)
and runs two StyleGAN2 skip blocks. The blocks are fp16 on CUDA with a
conv clamp of 256 when ``sr_num_fp16_res > 0``.

==============================  ======  =====  =========================================
module                          output  input  blocks (in -> out channels @ resolution)
==============================  ======  =====  =========================================
SuperresolutionHybrid2X         128     64     no-up C->128 @64, up 128->64 @128
SuperresolutionHybrid4X         256     128    no-up C->128 @128, up 128->64 @256
SuperresolutionHybrid8X         512     128    up C->128 @256, up 128->64 @512
SuperresolutionHybrid8XDC       512     128    up C->256 @256, up 256->128 @512
==============================  ======  =====  =========================================

2X and 8XDC (the released FFHQ/AFHQ models) are checked against the official
code by the conformance fixtures; 4X and 8X follow the same pattern and are
only checked for shapes. 8XDC has no ``resample_filter`` buffer of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import fir_filter_2d
from .synthesis import SynthesisBlock


@dataclass(frozen=True)
class SuperresolutionLayout:
    """Shape of one official super-resolution class."""

    img_resolution: int
    input_resolution: int
    block0_channels: int
    block0_upsample: bool
    block1_channels: int
    has_filter_buffer: bool


SUPERRESOLUTION_LAYOUTS: dict[str, SuperresolutionLayout] = {
    "SuperresolutionHybrid2X": SuperresolutionLayout(128, 64, 128, False, 64, True),
    "SuperresolutionHybrid4X": SuperresolutionLayout(256, 128, 128, False, 64, True),
    "SuperresolutionHybrid8X": SuperresolutionLayout(512, 128, 128, True, 64, True),
    "SuperresolutionHybrid8XDC": SuperresolutionLayout(512, 128, 256, True, 128, False),
}


def superresolution_class_name(dotted_name: str) -> str:
    """Map an official (``training.superresolution.X``) or bare class name to a key of the layout table."""
    name = str(dotted_name).rsplit(".", 1)[-1]
    if name not in SUPERRESOLUTION_LAYOUTS:
        known = ", ".join(sorted(SUPERRESOLUTION_LAYOUTS))
        raise ValueError(f"unknown superresolution_module {dotted_name!r}; supported: {known}")
    return name


class HybridSuperresolution(nn.Module):
    """One of the official ``SuperresolutionHybrid*`` modules, selected by class name."""

    def __init__(
        self,
        class_name: str,
        channels: int,
        img_resolution: int,
        sr_num_fp16_res: int,
        sr_antialias: bool,
        num_fp16_res: int = 4,
        conv_clamp: float | None = None,
        channel_base: int | None = None,
        channel_max: int | None = None,
        w_dim: int = 512,
        **block_kwargs,
    ) -> None:
        super().__init__()
        # num_fp16_res / conv_clamp / channel_base / channel_max are accepted and
        # ignored, as the official classes do: the layout is fixed per class.
        del num_fp16_res, conv_clamp, channel_base, channel_max
        self.class_name = superresolution_class_name(class_name)
        layout = SUPERRESOLUTION_LAYOUTS[self.class_name]
        if img_resolution != layout.img_resolution:
            raise ValueError(
                f"{self.class_name} produces {layout.img_resolution} px images, but img_resolution={img_resolution}"
            )
        self.input_resolution = layout.input_resolution
        self.sr_antialias = sr_antialias
        use_fp16 = sr_num_fp16_res > 0
        clamp = 256 if use_fp16 else None
        block0_resolution = layout.input_resolution * (2 if layout.block0_upsample else 1)
        self.block0 = SynthesisBlock(
            channels,
            layout.block0_channels,
            w_dim=w_dim,
            resolution=block0_resolution,
            img_channels=3,
            is_last=False,
            use_fp16=use_fp16,
            conv_clamp=clamp,
            upsample=layout.block0_upsample,
            **block_kwargs,
        )
        self.block1 = SynthesisBlock(
            layout.block0_channels,
            layout.block1_channels,
            w_dim=w_dim,
            resolution=block0_resolution * 2,
            img_channels=3,
            is_last=True,
            use_fp16=use_fp16,
            conv_clamp=clamp,
            **block_kwargs,
        )
        if layout.has_filter_buffer:
            self.register_buffer("resample_filter", fir_filter_2d())

    def forward(self, rgb: torch.Tensor, x: torch.Tensor, ws: torch.Tensor, **block_kwargs) -> torch.Tensor:
        """rgb [B,3,r,r], features x [B,C,r,r], ws [B,N,w_dim] -> image [B,3,img_resolution,img_resolution]."""
        ws = ws[:, -1:, :].repeat(1, 3, 1)
        if x.shape[-1] != self.input_resolution:
            size = (self.input_resolution, self.input_resolution)
            # In float32: under autocast the rendering may arrive in a reduced dtype, for which CPU (and some
            # torch builds) have no antialiased resize kernel; the blocks cast to their own dtype next.
            x = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=self.sr_antialias)
            rgb = F.interpolate(rgb.float(), size=size, mode="bilinear", align_corners=False, antialias=self.sr_antialias)
        x, rgb = self.block0(x, rgb, ws, **block_kwargs)
        x, rgb = self.block1(x, rgb, ws, **block_kwargs)
        return rgb
