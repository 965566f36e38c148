"""``TriPlaneGenerator``: EG3D's generator with the official init kwargs, key names and call API.

    G = TriPlaneGenerator(**init_kwargs)          # official kwarg names
    G.load_state_dict(official_state_dict)        # strict, official key names
    ws = G.mapping(z, c, truncation_psi=0.7)      # [B, 14, 512]
    out = G.synthesis(ws, c, noise_mode='const')  # {'image', 'image_raw', 'image_depth'}

Pipeline: the StyleGAN2 backbone turns ws into three 32-channel 256x256
planes; rays from the camera label ``c`` (16 cam2world values + 9 normalised
intrinsics) are rendered through them at ``neural_rendering_resolution``; the
super-resolution module turns the 32-channel rendering into the final image.

Randomness: with ``deterministic_rendering = False`` (the official behaviour)
the renderer draws ``torch.rand`` in the official order and shapes, so
``torch.manual_seed(s)`` right before ``synthesis`` reproduces official images.
Set ``G.deterministic_rendering = True`` (or pass ``deterministic=True``) for
jitter-free renders, e.g. evaluation and videos.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from .renderer import ImportanceRenderer, sample_rays
from .superresolution import HybridSuperresolution
from .synthesis import StyleGAN2Backbone
from .triplane import OSGDecoder

BACKBONE_RESOLUTION = 256
PLANE_CHANNELS = 32
DEFAULT_NEURAL_RENDERING_RESOLUTION = 64
REQUIRED_RENDERING_KEYS = (
    "superresolution_module",
    "sr_antialias",
    "depth_resolution",
    "depth_resolution_importance",
    "ray_start",
    "ray_end",
    "box_warp",
    "superresolution_noise_mode",
    "c_gen_conditioning_zero",
)


class TriPlaneGenerator(nn.Module):
    """EG3D tri-plane generator (clean-room PyTorch implementation of the official architecture)."""

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        sr_num_fp16_res: int = 0,
        mapping_kwargs: dict | None = None,
        rendering_kwargs: dict | None = None,
        sr_kwargs: dict | None = None,
        **synthesis_kwargs: Any,
    ) -> None:
        super().__init__()
        mapping_kwargs = dict(mapping_kwargs or {})
        rendering_kwargs = dict(rendering_kwargs or {})
        sr_kwargs = dict(sr_kwargs or {})
        missing = [key for key in REQUIRED_RENDERING_KEYS if key not in rendering_kwargs]
        if missing:
            raise ValueError(f"rendering_kwargs lacks {missing}")
        if img_channels != 3:
            raise ValueError(f"EG3D's super-resolution modules output 3 channels, got img_channels={img_channels}")
        # Kept so a checkpoint can rebuild the same network (see loading.save_generator).
        self.init_kwargs = copy.deepcopy(
            dict(
                z_dim=z_dim,
                c_dim=c_dim,
                w_dim=w_dim,
                img_resolution=img_resolution,
                img_channels=img_channels,
                sr_num_fp16_res=sr_num_fp16_res,
                mapping_kwargs=mapping_kwargs,
                rendering_kwargs=rendering_kwargs,
                sr_kwargs=sr_kwargs,
                **synthesis_kwargs,
            )
        )
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.renderer = ImportanceRenderer()
        self.backbone = StyleGAN2Backbone(
            z_dim,
            c_dim,
            w_dim,
            img_resolution=BACKBONE_RESOLUTION,
            img_channels=3 * PLANE_CHANNELS,
            mapping_kwargs=mapping_kwargs,
            **synthesis_kwargs,
        )
        self.superresolution = HybridSuperresolution(
            rendering_kwargs["superresolution_module"],
            channels=PLANE_CHANNELS,
            img_resolution=img_resolution,
            sr_num_fp16_res=sr_num_fp16_res,
            sr_antialias=rendering_kwargs["sr_antialias"],
            **sr_kwargs,
        )
        self.decoder = OSGDecoder(
            PLANE_CHANNELS, output_dim=PLANE_CHANNELS, lr_multiplier=rendering_kwargs.get("decoder_lr_mul", 1)
        )
        self.neural_rendering_resolution = DEFAULT_NEURAL_RENDERING_RESOLUTION
        self.rendering_kwargs = rendering_kwargs
        self.deterministic_rendering = False
        self._last_planes: torch.Tensor | None = None

    @property
    def num_ws(self) -> int:
        """Number of W+ vectors (14 for EG3D: fixed 256 px backbone)."""
        return self.backbone.num_ws

    def mapping(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """z [B, z_dim], camera label c [B, 25] -> ws [B, num_ws, w_dim]."""
        if self.rendering_kwargs["c_gen_conditioning_zero"]:
            c = torch.zeros_like(c)
        return self.backbone.mapping(
            z,
            c * self.rendering_kwargs.get("c_scale", 0),
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            update_emas=update_emas,
        )

    def synthesis(
        self,
        ws: torch.Tensor,
        c: torch.Tensor,
        neural_rendering_resolution: int | None = None,
        update_emas: bool = False,
        cache_backbone: bool = False,
        use_cached_backbone: bool = False,
        deterministic: bool | None = None,
        rand_coarse: torch.Tensor | None = None,
        rand_importance: torch.Tensor | None = None,
        ray_distortion: bool = False,
        **synthesis_kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """Render ws [B, num_ws, w_dim] from cameras c [B, 25].

        Returns ``image`` [B,3,img_resolution²], ``image_raw`` [B,3,nrr²] and
        ``image_depth`` [B,1,nrr²] (the official outputs); with ``ray_distortion`` also
        ``ray_distortion`` [B,1,nrr²] (:func:`hfagp.losses.geometry.ray_distortion`, a training regulariser). ``synthesis_kwargs`` (``noise_mode``,
        ``force_fp32``, ``fused_modconv``) go to the backbone; all but
        ``noise_mode`` also go to the super-resolution, whose noise mode comes from
        ``rendering_kwargs['superresolution_noise_mode']``. Passing
        ``neural_rendering_resolution`` sets it permanently, as the official code does.
        ``deterministic`` (default ``self.deterministic_rendering``) renders without
        random jitter; ``rand_coarse`` [B, M, D, 1] / ``rand_importance`` [B*M, D_imp]
        replace the renderer's two random draws (to replay recorded draws).
        """
        if deterministic is None:
            deterministic = self.deterministic_rendering
        cam2world = c[:, :16].reshape(-1, 4, 4)
        intrinsics = c[:, 16:25].reshape(-1, 3, 3)
        if neural_rendering_resolution is None:
            neural_rendering_resolution = self.neural_rendering_resolution
        else:
            self.neural_rendering_resolution = neural_rendering_resolution
        resolution = int(neural_rendering_resolution)

        ray_origins, ray_directions = sample_rays(cam2world, intrinsics, resolution)
        if use_cached_backbone and self._last_planes is not None:
            planes = self._last_planes
        else:
            planes = self.backbone.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)
        if cache_backbone:
            self._last_planes = planes
        planes = planes.view(len(planes), 3, PLANE_CHANNELS, planes.shape[-2], planes.shape[-1])

        rendered = self.renderer(
            planes,
            self.decoder,
            ray_origins,
            ray_directions,
            self.rendering_kwargs,
            deterministic=deterministic,
            rand_coarse=rand_coarse,
            rand_importance=rand_importance,
            with_distortion=ray_distortion,
        )
        n = ws.shape[0]
        # [N, M, C] per ray -> a channels-last [N, C, R, R] view, the layout the SR convs want.
        feature_image = rendered.features.reshape(n, resolution, resolution, -1).permute(0, 3, 1, 2)
        depth_image = rendered.depth.reshape(n, 1, resolution, resolution)
        rgb_image = feature_image[:, :3].contiguous()
        sr_kwargs = {key: value for key, value in synthesis_kwargs.items() if key != "noise_mode"}
        sr_image = self.superresolution(
            rgb_image, feature_image, ws, noise_mode=self.rendering_kwargs["superresolution_noise_mode"], **sr_kwargs
        )
        out = {"image": sr_image.contiguous(), "image_raw": rgb_image, "image_depth": depth_image}
        if ray_distortion:
            out["ray_distortion"] = rendered.distortion.reshape(n, 1, resolution, resolution)
        return out

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        neural_rendering_resolution: int | None = None,
        update_emas: bool = False,
        cache_backbone: bool = False,
        use_cached_backbone: bool = False,
        **synthesis_kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """Mapping then synthesis with the same camera ``c``."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(
            ws,
            c,
            neural_rendering_resolution=neural_rendering_resolution,
            update_emas=update_emas,
            cache_backbone=cache_backbone,
            use_cached_backbone=use_cached_backbone,
            **synthesis_kwargs,
        )
