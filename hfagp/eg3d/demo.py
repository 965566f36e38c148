"""The small random-init EG3D generator used when config.yaml names no checkpoint.

It has the shapes of the ``small128`` conformance fixture: 128 px output
(2X super-resolution), channel_base 2048 / channel_max 64, 32 px neural
rendering, 12 + 12 samples per ray, and the FFHQ camera settings. It has no
pretrained prior: images are meaningless blobs, good only for the CPU demo
and the tests. Every construction logs that loudly.
"""

from __future__ import annotations

import os

import torch

from .generator import TriPlaneGenerator
from hfagp.logs import get_logger

log = get_logger("eg3d")

DEMO_NEURAL_RENDERING_RESOLUTION = 32
DEMO_WARNING = "random-init demo generator, no pretrained prior"

DEMO_INIT_KWARGS: dict = {
    "z_dim": 512,
    "w_dim": 512,
    "c_dim": 25,
    "img_resolution": 128,
    "img_channels": 3,
    "mapping_kwargs": {"num_layers": 2},
    "channel_base": 2048,
    "channel_max": 64,
    "fused_modconv_default": "inference_only",
    "num_fp16_res": 0,
    "conv_clamp": None,
    "sr_num_fp16_res": 4,
    "sr_kwargs": {"channel_base": 32768, "channel_max": 512, "fused_modconv_default": "inference_only"},
    "rendering_kwargs": {
        "image_resolution": 128,
        "disparity_space_sampling": False,
        "clamp_mode": "softplus",
        "superresolution_module": "training.superresolution.SuperresolutionHybrid2X",
        "c_gen_conditioning_zero": False,
        "gpc_reg_prob": 0.8,
        "c_scale": 1,
        "superresolution_noise_mode": "none",
        "density_reg": 0.25,
        "density_reg_p_dist": 0.004,
        "reg_type": "l1",
        "decoder_lr_mul": 1,
        "sr_antialias": True,
        "depth_resolution": 12,
        "depth_resolution_importance": 12,
        "ray_start": 2.25,
        "ray_end": 3.3,
        "box_warp": 1,
        "avg_camera_radius": 2.7,
        "avg_camera_pivot": [0, 0, 0.2],
    },
}


def demo_generator(seed: int = 0, device: str | torch.device = "cpu") -> TriPlaneGenerator:
    """Build the random-init demo generator (eval mode), seeded without touching the global RNG state."""
    log.warning(
        "EG3D: *** %s *** (images are meaningless; set the EG3D checkpoint in config.yaml for real results)",
        DEMO_WARNING,
    )
    from .snapshot import random_generator

    return random_generator("demo", seed).to(device)


def generator_from_config(
    checkpoint: str | os.PathLike | None, device: str | torch.device = "cpu", demo_seed: int = 0
) -> TriPlaneGenerator:
    """The generator a pipeline stage should use: ``load_generator(checkpoint)``, or the demo one when None."""
    if checkpoint is None or str(checkpoint).strip() == "":
        return demo_generator(seed=demo_seed, device=device)
    from .loading import load_generator

    return load_generator(checkpoint, device=device)
