"""The PCA prior: subspace recovery, orthonormal basis, D > K-1 fill, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hfagp.cli import main
from hfagp.errors import HfagpError
from hfagp.prior.pca import fit_prior, read_prior


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles (radians) between the row spaces of a and b (both orthonormal rows)."""
    s = np.linalg.svd(a @ b.T, compute_uv=False)
    return np.arccos(np.clip(s, -1, 1))


def latents_in_subspace(k=12, r=4, seed=0):
    rng = np.random.default_rng(seed)
    true_basis, _ = np.linalg.qr(rng.normal(size=(14 * 512, r)))
    true_basis = true_basis.T
    mean = rng.normal(size=14 * 512)
    coeffs = rng.normal(size=(k, r)) * np.array([4.0, 3.0, 2.0, 1.0])[:r]
    return (mean + coeffs @ true_basis).reshape(k, 14, 512), true_basis, mean


def test_latents_in_a_known_subspace_give_back_that_subspace():
    latents, true_basis, _ = latents_in_subspace()
    prior = fit_prior(latents, subspace_dim=4)
    assert int(prior["data_directions"]) == 4
    assert principal_angles(prior["basis"].astype(np.float64), true_basis).max() < 1e-3
    np.testing.assert_allclose(prior["mean"].reshape(-1), latents.reshape(12, -1).mean(0), atol=1e-5)
    ev = prior["explained_variance"]
    assert (np.diff(ev) <= 0).all() and prior["explained_variance_ratio"].sum() == pytest.approx(1.0, abs=1e-4)


def test_basis_is_orthonormal_and_extra_directions_are_random_orthogonal():
    latents, true_basis, _ = latents_in_subspace(k=6, r=4)
    prior = fit_prior(latents, subspace_dim=50, seed=3)
    basis = prior["basis"].astype(np.float64)
    assert basis.shape == (50, 14 * 512) and prior["mean"].shape == (14, 512)
    np.testing.assert_allclose(basis @ basis.T, np.eye(50), atol=1e-5)
    assert int(prior["data_directions"]) == 4  # rank 4 < K-1 = 5
    assert principal_angles(basis[:4], true_basis).max() < 1e-3
    assert (prior["explained_variance"][4:] == 0).all()
    # K-1 caps the data directions for full-rank latents
    rng = np.random.default_rng(1)
    full = fit_prior(rng.normal(size=(5, 14, 512)), subspace_dim=10)
    assert int(full["data_directions"]) == 4 and full["basis"].shape == (10, 7168)
    np.testing.assert_allclose(full["basis"].astype(np.float64) @ full["basis"].T.astype(np.float64), np.eye(10), atol=1e-5)
    assert np.array_equal(fit_prior(latents, 50, seed=3)["basis"], prior["basis"]), "deterministic"


def test_cli_writes_prior_npz_and_rejects_wrong_latents(tmp_path):
    latents, _, _ = latents_in_subspace(k=5, r=3)
    path = tmp_path / "latents.pt"
    torch.save({"latents": torch.tensor(latents, dtype=torch.float32), "frames": [3, 5, 7, 9, 11]}, path)
    out = tmp_path / "prior.npz"
    assert main(["prior", str(path), "-o", str(out), "--subspace-dim", "8"]) == 0
    prior = read_prior(out)
    assert prior["basis"].shape == (8, 7168) and list(prior["frames"]) == [3, 5, 7, 9, 11]
    assert int(prior["data_directions"]) == 3
    torch.save({"latents": torch.zeros(5, 18, 512)}, tmp_path / "bad.pt")
    assert main(["prior", str(tmp_path / "bad.pt"), "-o", str(tmp_path / "bad.npz")]) == 2
    assert not (tmp_path / "bad.npz").exists()
    with pytest.raises(HfagpError, match="not found"):
        read_prior(tmp_path / "missing.npz")
