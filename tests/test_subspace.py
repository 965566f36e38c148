"""The personal subspace (hfagp.avatar.subspace): latent = delta + weights @ Q.T with Q the sign-fixed QR of the bases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hfagp.avatar.subspace import PersonalSubspace
from hfagp.errors import HfagpError
from hfagp.prior.pca import fit_prior

D = 10
SIZE = 14 * 512


@pytest.fixture(scope="module")
def prior() -> dict:
    """A PCA prior of 30 random latents (D = 10 orthonormal rows)."""
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((30, 14, 512)).astype(np.float32) * 0.5 + 0.2
    return fit_prior(latents, D)


@pytest.fixture
def space(prior) -> PersonalSubspace:
    return PersonalSubspace(torch.from_numpy(prior["mean"]), torch.from_numpy(prior["basis"]))


def test_latent_is_mean_plus_weighted_orthonormal_columns(space):
    q = space.orthonormal_basis()
    assert q.shape == (SIZE, D)
    torch.testing.assert_close(q.T @ q, torch.eye(D), atol=1e-5, rtol=0)
    weights = torch.randn(3, D)
    latent = space(weights)
    assert latent.shape == (3, 14, 512)
    expected = space.delta + sum(weights[:, i : i + 1] * q[:, i] for i in range(D))
    torch.testing.assert_close(latent.reshape(3, -1), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(space.project(latent), weights, atol=1e-4, rtol=1e-4)


def test_init_spans_the_prior(space, prior):
    assert space.dim == D
    basis = torch.from_numpy(prior["basis"]).double()
    q = space.orthonormal_basis().detach().double()
    cosines = torch.linalg.svdvals(basis @ q)  # cosines of the principal angles between the two subspaces
    torch.testing.assert_close(cosines, torch.ones(D, dtype=torch.float64), atol=1e-5, rtol=0)
    # the prior rows are orthonormal, so with the sign fix Q is exactly the prior basis, column by column
    torch.testing.assert_close(q, basis.T, atol=1e-5, rtol=0)
    mean = torch.from_numpy(prior["mean"])
    torch.testing.assert_close(space(torch.zeros(2, D)), mean.expand(2, 14, 512))


def test_gradients_reach_bases_and_delta(space):
    latent = space(torch.randn(2, D))
    (latent * torch.randn_like(latent)).sum().backward()
    for p in (space.bases, space.delta):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_column_signs_follow_the_bases_rows():
    torch.manual_seed(0)
    bases = torch.randn(D, SIZE)
    bases[::2] *= -1  # whatever the rows' signs, column i points along row i
    space = PersonalSubspace(torch.zeros(SIZE), bases)
    q = space.orthonormal_basis().detach()
    assert ((q.T * bases).sum(dim=1) > 0).all()


def test_column_signs_stable_across_an_optimisation_step(space):
    optimiser = torch.optim.Adam(space.parameters(), lr=3e-4)
    before = space.orthonormal_basis().detach()
    for _ in range(2):
        optimiser.zero_grad()
        latent = space(torch.randn(4, D))
        (latent - 1.0).pow(2).mean().backward()
        optimiser.step()
    after = space.orthonormal_basis().detach()
    assert not torch.equal(before, after)
    overlap = (before * after).sum(dim=0)  # cosine between column i before and after
    assert (overlap > 0.9).all(), overlap


def test_wrong_shapes_raise(space):
    with pytest.raises(HfagpError, match=r"\(B, 10\)"):
        space(torch.zeros(2, D + 1))
    with pytest.raises(HfagpError, match=r"\(B, 10\)"):
        space(torch.zeros(D))
    with pytest.raises(HfagpError, match="expected 14x512"):
        PersonalSubspace(torch.zeros(13, 512), torch.zeros(D, SIZE))
    with pytest.raises(HfagpError, match="match the mean"):
        PersonalSubspace(torch.zeros(14, 512), torch.zeros(D, 100))
    with pytest.raises(HfagpError, match="match the mean"):
        PersonalSubspace(torch.zeros(14, 512), torch.zeros(SIZE))


def test_from_prior(tmp_path, prior):
    path = tmp_path / "prior.npz"
    np.savez(path, **prior)
    space = PersonalSubspace.from_prior(path)
    assert space.dim == D
    torch.testing.assert_close(space(torch.zeros(1, D))[0], torch.from_numpy(prior["mean"]))


def test_from_prior_errors_name_the_file(tmp_path, prior):
    with pytest.raises(HfagpError, match="missing.npz"):
        PersonalSubspace.from_prior(tmp_path / "missing.npz")
    bad = tmp_path / "bad_basis.npz"
    np.savez(bad, **{**prior, "basis": prior["basis"][:, :100]})
    with pytest.raises(HfagpError, match="bad_basis.npz.*does not match"):
        PersonalSubspace.from_prior(bad)
    flat = tmp_path / "flat_mean.npz"
    np.savez(flat, **{**prior, "mean": prior["mean"].reshape(-1)})
    with pytest.raises(HfagpError, match="flat_mean.npz.*mean"):
        PersonalSubspace.from_prior(flat)
