"""Stages ``prior`` and ``qc-prior``: the personalised subspace of W+ spanned by the inverted frames.

``hfagp prior`` runs a PCA of the K inverted latents (``inversion/latents.pt``,
(K,14,512), flattened to 7168). The mean is the centre of the subspace; the
principal directions are its basis. K latents span at most K-1 directions
around their mean, so when D (``prior.subspace_dim``) exceeds the data rank
the remaining D - r rows are random directions orthogonal to the data ones
(seeded), with explained variance 0, and ``data_directions`` = r says how
many rows are data-driven. Each data direction's sign is fixed (its largest
component positive) so the result does not depend on the SVD library.

``prior.npz``:

* ``mean`` (14,512) float32, ``basis`` (D, 7168) float32 with orthonormal rows,
* ``explained_variance`` (D) (latent variance along each row, 0 for the random ones),
* ``explained_variance_ratio`` (D), ``data_directions`` (int), ``frames`` (K),
  ``total_variance`` (float), ``seed`` (int).

``hfagp qc-prior`` renders the mean and +-sigma steps along the first
principal directions at the frontal camera with the generator named by
``inversion/generator.json`` -> ``qc/prior.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hfagp.errors import HfagpError
from hfagp.io.artifacts import load_npz
from hfagp.logs import get_logger

log = get_logger("prior")

RANK_TOLERANCE = 1e-6  # singular values below this fraction of the largest count as zero


def _orthonormal_fill(basis: np.ndarray, count: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random unit rows orthogonal to each other and to the rows of ``basis``."""
    if count == 0:
        return np.zeros((0, dim))
    rows = rng.standard_normal((count, dim))
    for _ in range(2):  # twice: classical Gram-Schmidt against the data directions loses orthogonality once
        rows -= (rows @ basis.T) @ basis
    q, r = np.linalg.qr(rows.T)
    q = q * np.sign(np.where(np.diag(r) == 0, 1.0, np.diag(r)))
    rows = q.T
    rows -= (rows @ basis.T) @ basis
    q, _ = np.linalg.qr(rows.T)
    return q.T[:count]


def fit_prior(latents: np.ndarray, subspace_dim: int, seed: int = 0) -> dict:
    """PCA prior of latents (K,14,512) (or (K, N)): see the module docstring for the fields."""
    latents = np.asarray(latents, dtype=np.float64)
    k = len(latents)
    shape = latents.shape[1:]
    flat = latents.reshape(k, -1)
    dim = flat.shape[1]
    if subspace_dim < 1:
        raise HfagpError(f"prior.subspace_dim must be >= 1, got {subspace_dim}; fix config.yaml")
    if subspace_dim > dim:
        raise HfagpError(f"prior.subspace_dim {subspace_dim} exceeds the latent size {dim}; lower it in config.yaml")
    mean = flat.mean(axis=0)
    centred = flat - mean
    if k > 1:
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        rank = int((singular > RANK_TOLERANCE * max(singular[0], 1e-30)).sum()) if singular[0] > 0 else 0
    else:
        singular, vt, rank = np.zeros(0), np.zeros((0, dim)), 0
    data = min(subspace_dim, rank, max(k - 1, 0))
    directions = vt[:data].copy()
    for row in directions:  # deterministic sign: the largest-magnitude component is positive
        if row[np.argmax(np.abs(row))] < 0:
            row *= -1
    fill = _orthonormal_fill(directions, subspace_dim - data, dim, np.random.default_rng(seed))
    basis = np.concatenate([directions, fill], axis=0)
    variance = np.zeros(subspace_dim)
    if k > 1:
        variance[:data] = singular[:data] ** 2 / (k - 1)
    total = float((centred**2).sum() / max(k - 1, 1))
    return {
        "mean": mean.reshape(shape).astype(np.float32),
        "basis": basis.astype(np.float32),
        "explained_variance": variance.astype(np.float32),
        "explained_variance_ratio": (variance / total if total > 0 else variance).astype(np.float32),
        "data_directions": np.int64(data),
        "total_variance": np.float64(total),
        "seed": np.int64(seed),
    }


def read_prior(path: str | Path) -> dict:
    """Read ``prior.npz`` (arrays as numpy) with a clear error for missing or malformed files."""
    path = Path(path)
    prior = load_npz(path, "prior", "run `hfagp prior` (again) to write it")
    for key in ("mean", "basis", "explained_variance", "data_directions"):
        if key not in prior:
            raise HfagpError(f"{path} lacks {key!r}; it was not written by `hfagp prior` (rerun it)")
    if prior["basis"].ndim != 2 or prior["basis"].shape[1] != prior["mean"].size:
        raise HfagpError(f"{path}: basis {prior['basis'].shape} does not match mean {prior['mean'].shape}; rerun `hfagp prior`")
    return prior


def run_prior(latents_path: str | Path, output: str | Path, subspace_dim: int, seed: int = 0) -> dict:
    """``hfagp prior``: PCA of the latents -> prior.npz."""
    from hfagp.io import atomic
    from hfagp.prior.latents import read_latents

    record = read_latents(latents_path)
    latents = record["latents"].numpy()
    k = len(latents)
    prior = fit_prior(latents, subspace_dim, seed)
    prior["frames"] = np.asarray(record["frames"], dtype=np.int64)
    data = int(prior["data_directions"])
    if data < subspace_dim:
        log.warning(
            "prior: only %d of %d directions are data-driven (K=%d latents span at most K-1); "
            "the other %d are random orthogonal directions (invert more frames for a richer prior)",
            data,
            subspace_dim,
            k,
            subspace_dim - data,
        )
    ratio = prior["explained_variance_ratio"]
    log.info(
        "prior: D=%d from K=%d latents; first directions explain %s of the variance (total %.4g)",
        subspace_dim,
        k,
        ", ".join(f"{100 * v:.1f}%" for v in ratio[: min(5, data)]) or "none",
        float(prior["total_variance"]),
    )
    atomic.save_npz(output, **prior)
    return prior
