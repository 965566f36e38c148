"""The personal subspace of W+: ``latent = delta + weights @ Q.T`` with learnable ``delta`` and ``bases``.

HFA-GP (SPEC section 2) learns a mean ``delta`` (14*512) and ``D`` basis
vectors ``bases`` (D, 14*512); every forward orthonormalises the bases with a
reduced QR of ``bases.T`` so the drivers' D weights are coordinates along
orthonormal directions. We initialise ``delta`` and ``bases`` from the PCA
prior (``prior.npz``: ``mean`` and ``basis``, see :mod:`hfagp.prior.pca`).

QR is unique only up to the sign of each column; we flip each column of Q so
that its dot product with the corresponding row of ``bases`` (the diagonal of
R) is positive. Then Q's i-th column is Gram-Schmidt of row i, it equals the
i-th prior direction at initialisation (the prior's rows are orthonormal), and
it changes continuously while ``bases`` is optimised.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from hfagp.errors import HfagpError


class PersonalSubspace(nn.Module):
    """latent = delta + weights @ Q.T, reshaped (B, num_ws, w_dim); Q = sign-fixed reduced QR of ``bases.T``.

    ``delta`` (num_ws*w_dim,) and ``bases`` (D, num_ws*w_dim) are
    nn.Parameters initialised from ``mean`` (any shape with num_ws*w_dim
    values) and ``basis`` (D, num_ws*w_dim). Q is recomputed at every forward
    so gradients flow into ``bases``.
    """

    def __init__(self, mean: torch.Tensor, basis: torch.Tensor, num_ws: int = 14, w_dim: int = 512) -> None:
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32)
        basis = torch.as_tensor(basis, dtype=torch.float32)
        size = num_ws * w_dim
        if mean.numel() != size:
            raise HfagpError(f"subspace mean has shape {tuple(mean.shape)}, expected {num_ws}x{w_dim} = {size} values")
        if basis.ndim != 2 or basis.shape[1] != size:
            raise HfagpError(f"subspace basis has shape {tuple(basis.shape)}, expected (D, {size}) to match the mean")
        if not 1 <= basis.shape[0] <= size:
            raise HfagpError(f"subspace basis has {basis.shape[0]} rows; D must be between 1 and {size}")
        if not torch.isfinite(basis).all() or not torch.isfinite(mean).all():
            raise HfagpError("subspace mean or basis holds NaN or infinite values")
        self.num_ws = num_ws
        self.w_dim = w_dim
        self.delta = nn.Parameter(mean.reshape(size).clone())
        self.bases = nn.Parameter(basis.clone())

    @classmethod
    def from_prior(cls, path: str | Path) -> "PersonalSubspace":
        """The subspace initialised from ``prior.npz`` (its ``mean`` (14,512) and ``basis`` (D, 7168))."""
        from hfagp.prior.pca import read_prior

        prior = read_prior(path)
        mean, basis = prior["mean"], prior["basis"]
        if mean.ndim != 2:
            raise HfagpError(f"{path}: mean has shape {mean.shape}, expected (num_ws, w_dim); rerun `hfagp prior`")
        try:
            return cls(torch.from_numpy(mean), torch.from_numpy(basis), num_ws=mean.shape[0], w_dim=mean.shape[1])
        except HfagpError as err:
            raise HfagpError(f"{path}: {err}; rerun `hfagp prior`") from err

    @property
    def dim(self) -> int:
        """D, the number of subspace directions (= the drivers' output size)."""
        return self.bases.shape[0]

    def orthonormal_basis(self) -> torch.Tensor:
        """Q (num_ws*w_dim, D): orthonormal columns, column i = Gram-Schmidt of ``bases[i]`` (positive overlap)."""
        q, r = torch.linalg.qr(self.bases.T, mode="reduced")
        sign = torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(q.dtype)
        return q * sign

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        """(B, D) subspace weights -> (B, num_ws, w_dim) W+ latents."""
        if weights.ndim != 2 or weights.shape[1] != self.dim:
            raise HfagpError(f"subspace weights must have shape (B, {self.dim}), got {tuple(weights.shape)}")
        latent = self.delta + weights @ self.orthonormal_basis().T
        return latent.view(-1, self.num_ws, self.w_dim)

    def project(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, num_ws, w_dim) latents -> (B, D) weights of their orthogonal projection onto the subspace."""
        flat = latents.reshape(latents.shape[0], -1)
        if flat.shape[1] != self.delta.numel():
            raise HfagpError(f"latents must have {self.num_ws}x{self.w_dim} values each, got {tuple(latents.shape)}")
        return (flat - self.delta) @ self.orthonormal_basis()
