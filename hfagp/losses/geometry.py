"""Geometry regularisers of volume rendering (no image, no downloaded weights).

:func:`ray_distortion` is the distortion loss of Mip-NeRF 360 (Barron et al., CVPR 2022,
eq. 15): for the interval weights ``w_i`` of one ray over normalised distances
``[s_i, s_{i+1}]``,

    L = sum_{i,j} w_i w_j |m_i - m_j| + 1/3 sum_i w_i^2 (s_{i+1} - s_i)

with ``m_i`` the interval midpoints. It is small when a ray's weight sits in one
short stretch (a surface) and large when it is smeared along the ray. A tri-plane
fitted to nearly frontal views alone can explain them with colour smeared through
depth, which looks right from the front and breaks into streaks from the side;
this term asks for a surface instead.
"""

from __future__ import annotations

import torch


def ray_distortion(weights: torch.Tensor, depths: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """Mip-NeRF 360 distortion [...] of interval weights [..., S-1] and sorted sample depths [..., S].

    Depths are normalised to ``(d - near) / (far - near)`` first, so the value does not depend on the
    scene's units (0 for a delta, 1/3 for weight spread evenly over the whole range). The double sum
    is evaluated in O(S) with prefix sums (the midpoints are sorted).
    """
    if weights.shape[-1] != depths.shape[-1] - 1:
        raise ValueError(f"expected S-1 interval weights for S depths, got {tuple(weights.shape)} and {tuple(depths.shape)}")
    span = float(far) - float(near)
    if not span > 0:
        raise ValueError(f"far must exceed near, got near={near} far={far}")
    s = (depths - near) / span
    mids = (s[..., 1:] + s[..., :-1]) / 2
    lengths = s[..., 1:] - s[..., :-1]
    # sum_{i,j} w_i w_j |m_i - m_j| = 2 sum_i w_i (m_i W_{<i} - (w m)_{<i}) for sorted m.
    weight_before = torch.cumsum(weights, -1) - weights
    moment_before = torch.cumsum(weights * mids, -1) - weights * mids
    between = 2 * (weights * (mids * weight_before - moment_before)).sum(-1)
    within = (weights**2 * lengths).sum(-1) / 3
    return between + within
