"""Tri-plane volume rendering of EG3D: rays, stratified + importance sampling, decoder, marching.

Conventions (spec/eg3d.md section 1):

* Rays: OpenCV cam2world, pixel centres ``(j + .5) / R``; ray index ``i * R + j``.
* Tri-plane sampling: points are scaled by ``2 / box_warp`` and projected onto
  the XY, XZ and ZX planes (the third plane is (z, x), not (y, z)); bilinear
  sampling equal to ``grid_sample(zeros padding, align_corners=False)``.
* Decoder: mean over the three planes, FC 32->64, softplus, FC 64->33;
  sigma is the raw first channel, the 32 features are ``sigmoid * 1.002 - 0.001``.
* Marching (MipRayMarcher2): interval midpoints, ``softplus(sigma_mid - 1)``,
  ``alpha = 1 - exp(-sigma * delta)`` (as ``-expm1(-sigma * delta)``), transmittance ``cumprod([1, 1 - alpha + 1e-10])``.
  Depth is the weighted mean depth, NaN -> inf, clamped to the min/max depth of
  the whole batch. Features are scaled to [-1, 1].

Random numbers, in the official order (so a ``torch.manual_seed`` right before
synthesis reproduces official renders): ``torch.rand(N, M, D, 1)`` for the
stratified jitter of the coarse depths, then ``torch.rand(N * M, D_importance)``
for inverse-CDF importance sampling. ``deterministic=True`` uses no jitter and
evenly spaced CDF samples instead (no random numbers are drawn).

Speed: the three bilinear plane lookups are one weighted gather
(``embedding_bag``) from the channels-last planes; rays are processed in
cache-sized chunks from sampling to compositing; the 32-channel samples are
never sorted (only the scalar weights are scattered back to sample order).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hfagp.losses.geometry import ray_distortion

from .triplane import OSGDecoder, TableGradientSink, bilinear_taps, plane_table, sinked_table, weighted_gather

TRANSMITTANCE_EPS = 1e-10
PDF_EPS = 1e-5


def sample_rays(cam2world: torch.Tensor, intrinsics: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One ray per pixel centre: origins and unit directions, each [N, R*R, 3].

    ``cam2world`` [N, 4, 4] is OpenCV (x right, y down, z forward); ``intrinsics``
    [N, 3, 3] are normalised to the unit image (fx, skew, cx / fy, cy).
    """
    n = cam2world.shape[0]
    device = cam2world.device
    origins = cam2world[:, :3, 3]
    fx = intrinsics[:, 0, 0, None]
    fy = intrinsics[:, 1, 1, None]
    cx = intrinsics[:, 0, 2, None]
    cy = intrinsics[:, 1, 2, None]
    sk = intrinsics[:, 0, 1, None]
    pixel = torch.arange(resolution, dtype=torch.float32, device=device) * (1.0 / resolution) + (0.5 / resolution)
    v, u = torch.meshgrid(pixel, pixel, indexing="ij")  # v: row (y), u: column (x)
    u = u.reshape(1, -1)
    v = v.reshape(1, -1)
    x_cam = (u - cx + cy * sk / fy - sk * v / fy) / fx
    y_cam = ((v - cy) / fy).expand_as(x_cam)
    ones = torch.ones_like(x_cam)
    points_cam = torch.stack([x_cam, y_cam, ones, ones], dim=1)  # [N, 4, M]
    points_world = torch.bmm(cam2world, points_cam)[:, :3].transpose(1, 2)  # [N, M, 3]
    directions = F.normalize(points_world - origins[:, None, :], dim=2)
    return origins[:, None, :].expand(n, directions.shape[1], 3), directions


def marching_weights(densities: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
    """Per-interval weights [..., S-1] of raw densities and sorted depths [..., S] (MipRayMarcher2)."""
    deltas = depths[..., 1:] - depths[..., :-1]
    densities_mid = F.softplus((densities[..., :-1] + densities[..., 1:]) / 2 - 1)
    # -expm1(-x) is 1 - exp(-x) (to 6e-8 here) computed by ATen's own vectorised kernel: torch.exp on CPU
    # goes to MKL's VML, whose bits depend on which of MKL's CPU code paths runs it, and a fresh process
    # under load sometimes ran another path for its first call (README "Reproducibility").
    alpha = -torch.expm1(-(densities_mid * deltas))
    transmittance = torch.cumprod(
        torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha + TRANSMITTANCE_EPS], dim=-1), dim=-1
    )
    return alpha * transmittance[..., :-1]


def weighted_depth(weights: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
    """Weighted mean interval depth [...] of interval weights [..., S-1] and sorted depths [..., S]; NaN -> inf."""
    depths_mid = (depths[..., :-1] + depths[..., 1:]) / 2
    depth = (weights * depths_mid).sum(-1) / weights.sum(-1)
    return torch.nan_to_num(depth, float("inf"))


def composite_depth(weights: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
    """:func:`weighted_depth` clamped to the min/max of all ``depths`` (the official global clamp)."""
    return torch.clamp(weighted_depth(weights, depths), depths.min(), depths.max())


def sample_weights_from_interval_weights(weights: torch.Tensor) -> torch.Tensor:
    """Turn interval weights [..., S-1] into per-sample weights [..., S] for midpoint colours.

    Marching uses interval colours ``(c_k + c_{k+1}) / 2``, so sample k gets
    ``(w_{k-1} + w_k) / 2``; compositing samples with these equals compositing midpoints.
    """
    padded = F.pad(weights, (1, 1))
    return (padded[..., :-1] + padded[..., 1:]) / 2


def smooth_importance_weights(weights: torch.Tensor) -> torch.Tensor:
    """Official smoothing of coarse weights [R, S-1]: max-pool(2,1,pad 1), avg-pool(2,1), + 0.01."""
    weights = F.max_pool1d(weights.unsqueeze(1).float(), 2, 1, padding=1)
    weights = F.avg_pool1d(weights, 2, 1).squeeze(1)
    return weights + 0.01


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n_samples: int, u: torch.Tensor | None) -> torch.Tensor:
    """Inverse-CDF sampling: ``n_samples`` positions per row along piecewise-linear ``bins``.

    Args:
        bins: [R, B] bin edges (only the first ``weights.shape[1] + 1`` are reachable).
        weights: [R, W] unnormalised bin weights (``1e-5`` is added).
        n_samples: samples per row.
        u: uniform numbers [R, n_samples] in [0, 1); None = evenly spaced 0..1 (deterministic).
    """
    n_rows, n_bins = weights.shape
    weights = weights + PDF_EPS
    pdf = weights / torch.sum(weights, -1, keepdim=True)
    cdf = torch.cumsum(pdf, -1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], -1)
    if u is None:
        u = torch.linspace(0, 1, n_samples, device=bins.device).expand(n_rows, n_samples)
    u = u.contiguous()
    inds = torch.searchsorted(cdf, u, right=True)
    below = torch.clamp_min(inds - 1, 0)
    above = torch.clamp_max(inds, n_bins)
    inds_sampled = torch.stack([below, above], -1).view(n_rows, 2 * n_samples)
    cdf_g = torch.gather(cdf, 1, inds_sampled).view(n_rows, n_samples, 2)
    bins_g = torch.gather(bins, 1, inds_sampled).view(n_rows, n_samples, 2)
    denom = cdf_g[..., 1] - cdf_g[..., 0]
    denom = torch.where(denom < PDF_EPS, torch.ones_like(denom), denom)
    return bins_g[..., 0] + (u - cdf_g[..., 0]) / denom * (bins_g[..., 1] - bins_g[..., 0])


@dataclass
class RenderOutput:
    """Per-ray results: features [N, M, C] in [-1, 1], depth [N, M], weight sum [N, M], distortion [N, M].

    ``distortion`` is :func:`hfagp.losses.geometry.ray_distortion` over ``[ray_start, ray_end]`` (a training
    regulariser, not an official output), only when asked for (``with_distortion``), else None.
    """

    features: torch.Tensor
    depth: torch.Tensor
    weight_sum: torch.Tensor
    distortion: torch.Tensor | None = None


# Points decoded per step: large enough to amortise per-op overhead, small
# enough that a chunk's activations stay in cache (and in malloc's free lists).
CHUNK_POINTS = 32768


@dataclass
class _RayBatch:
    """Flattened rays [N*M, 3] and what every chunk needs to decode points along them."""

    origins: torch.Tensor
    directions: torch.Tensor
    batch_index: torch.Tensor  # [N*M] which sample (tri-plane set) each ray belongs to
    table: torch.Tensor  # the planes as an embedding table, see plane_table
    sink: TableGradientSink
    height: int
    width: int
    box_warp: float

    def decode(self, decoder: OSGDecoder, rays: slice, depths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """rgb [R, S, 32] and raw sigma [R, S] at ``origin + depth * direction`` for the rays in ``rays``."""
        r, s = depths.shape
        points = self.origins[rays].unsqueeze(-2) + depths.unsqueeze(-1) * self.directions[rays].unsqueeze(-2)
        index = self.batch_index[rays].repeat_interleave(s)
        rows, weights = bilinear_taps(points.reshape(-1, 3), index, self.height, self.width, self.box_warp)
        rgb, sigma = decoder(weighted_gather(self.table, rows, weights, self.sink))
        return rgb.reshape(r, s, -1), sigma.reshape(r, s)


class ImportanceRenderer(nn.Module):
    """Coarse stratified pass + importance pass through the tri-planes, then volume marching.

    Rays are processed in chunks from sampling to compositing; only the random
    draws (made up front, in the official order) and the final depth clamp span
    the whole batch.
    """

    def forward(
        self,
        planes: torch.Tensor,
        decoder: OSGDecoder,
        ray_origins: torch.Tensor,
        ray_directions: torch.Tensor,
        options: dict,
        deterministic: bool = False,
        rand_coarse: torch.Tensor | None = None,
        rand_importance: torch.Tensor | None = None,
        with_distortion: bool = False,
    ) -> RenderOutput:
        """Render rays [N, M, 3] through ``planes`` [N, 3, C, H, W].

        ``rand_coarse`` [N, M, D, 1] / ``rand_importance`` [N*M, D_imp] replace the
        random draws (for testing against recorded draws); ``deterministic`` drops them.
        """
        if options.get("disparity_space_sampling", False):
            raise ValueError("disparity_space_sampling=True is not supported (no released EG3D model uses it)")
        if options.get("clamp_mode", "softplus") != "softplus":
            raise ValueError("only clamp_mode='softplus' is supported (as in the official MipRayMarcher2)")
        if options.get("density_noise", 0) > 0:
            raise ValueError("density_noise > 0 is a training-only option and is not supported")
        n, m, _ = ray_origins.shape
        n_coarse = int(options["depth_resolution"])
        n_fine = int(options["depth_resolution_importance"])
        ray_start, ray_end = float(options["ray_start"]), float(options["ray_end"])
        device = ray_origins.device

        # Both random draws happen before any decoding, in the official order and shapes.
        jitter = u_all = None
        if not deterministic:
            jitter = rand_coarse if rand_coarse is not None else torch.rand(n, m, n_coarse, 1, device=device)
            jitter = jitter.to(device).reshape(n * m, n_coarse)
            if n_fine > 0:
                u_all = rand_importance if rand_importance is not None else torch.rand(n * m, n_fine, device=device)
                u_all = u_all.to(device)

        sink = TableGradientSink()
        batch = _RayBatch(
            origins=ray_origins.reshape(n * m, 3),
            directions=ray_directions.reshape(n * m, 3),
            batch_index=torch.arange(n, device=device).repeat_interleave(m),
            table=sinked_table(plane_table(planes), sink),
            sink=sink,
            height=planes.shape[-2],
            width=planes.shape[-1],
            box_warp=float(options["box_warp"]),
        )
        base_depths = torch.linspace(ray_start, ray_end, n_coarse, device=device)
        depth_delta = (ray_end - ray_start) / (n_coarse - 1)

        features_out, depth_out, weight_sum_out, distortion_out = [], [], [], []
        depth_min = depth_max = None
        rays_per_chunk = max(1, CHUNK_POINTS // max(n_coarse, n_fine, 1))
        for first in range(0, n * m, rays_per_chunk):
            rays = slice(first, min(first + rays_per_chunk, n * m))
            depths_coarse = base_depths.expand(rays.stop - rays.start, n_coarse)
            if jitter is not None:
                depths_coarse = depths_coarse + jitter[rays] * depth_delta
            u = u_all[rays] if u_all is not None else None
            features, weights, all_depths = self._render_chunk(batch, decoder, rays, depths_coarse, n_fine, u)
            features_out.append(features)
            depth_out.append(weighted_depth(weights, all_depths))
            weight_sum_out.append(weights.sum(-1))
            if with_distortion:
                distortion_out.append(ray_distortion(weights, all_depths, ray_start, ray_end))
            chunk_min, chunk_max = all_depths.detach().min(), all_depths.detach().max()
            depth_min = chunk_min if depth_min is None else torch.minimum(depth_min, chunk_min)
            depth_max = chunk_max if depth_max is None else torch.maximum(depth_max, chunk_max)

        features = torch.cat(features_out).reshape(n, m, -1)
        depth = torch.clamp(torch.cat(depth_out), depth_min, depth_max).reshape(n, m)
        distortion = torch.cat(distortion_out).reshape(n, m) if with_distortion else None
        return RenderOutput(features * 2 - 1, depth, torch.cat(weight_sum_out).reshape(n, m), distortion)

    @staticmethod
    def _render_chunk(
        batch: _RayBatch,
        decoder: OSGDecoder,
        rays: slice,
        depths_coarse: torch.Tensor,
        n_fine: int,
        u: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Render some rays: composited features [R, 32] in [0, 1], interval weights, sorted depths."""
        rgb_coarse, sigma_coarse = batch.decode(decoder, rays, depths_coarse)
        if n_fine <= 0:
            weights = marching_weights(sigma_coarse, depths_coarse)
            features = torch.bmm(sample_weights_from_interval_weights(weights)[:, None], rgb_coarse)
            return features[:, 0], weights, depths_coarse

        with torch.no_grad():
            smoothed = smooth_importance_weights(marching_weights(sigma_coarse, depths_coarse))
            z_mid = 0.5 * (depths_coarse[:, :-1] + depths_coarse[:, 1:])
            depths_fine = sample_pdf(z_mid, smoothed[:, 1:-1], n_fine, u)
        rgb_fine, sigma_fine = batch.decode(decoder, rays, depths_fine)

        n_coarse = depths_coarse.shape[1]
        all_depths, order = torch.sort(torch.cat([depths_coarse, depths_fine], dim=-1), dim=-1)
        all_sigma = torch.gather(torch.cat([sigma_coarse, sigma_fine], dim=-1), -1, order)
        weights = marching_weights(all_sigma, all_depths)
        # Composite the 32 feature channels without sorting them: scatter each
        # sorted sample's weight back to its unsorted slot instead.
        sample_weights = torch.zeros_like(all_depths).scatter(-1, order, sample_weights_from_interval_weights(weights))
        features = torch.bmm(sample_weights[:, None, :n_coarse], rgb_coarse) + torch.bmm(
            sample_weights[:, None, n_coarse:], rgb_fine
        )
        return features[:, 0], weights, all_depths
