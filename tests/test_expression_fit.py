"""The sparse morphable model and its joint fit (hfagp.face3d.morphable, hfagp.face3d.fit)."""

from __future__ import annotations

import numpy as np
import pytest

from hfagp.face3d import geometry as geo
from hfagp.face3d.face_model import extract_5p, landmark_model_68
from hfagp.face3d.fit import FitSettings, _Problem, fit_sequence, project, rotation_angle_deg, rotation_exp, skew
from hfagp.face3d.morphable import N_EXPRESSION, N_IDENTITY, sparse_model


@pytest.fixture(scope="module")
def model():
    return sparse_model()


def synthetic_sequence(model, frames: int, noise_px: float, seed: int = 0):
    """Landmarks made by the model itself: known identity, expressions and poses (+ pixel noise)."""
    rng = np.random.default_rng(seed)
    identity = rng.normal(size=N_IDENTITY) * 0.7
    expression = rng.normal(size=(frames, N_EXPRESSION)) * 0.8
    angles = np.c_[rng.uniform(-15, 15, frames), rng.uniform(-30, 30, frames), rng.uniform(-10, 10, frames)]
    rotation = np.array([geo.rotation_from_euler(*a) for a in angles])
    translation = np.c_[rng.normal(0, 0.05, (frames, 2)), rng.uniform(9.5, 11.0, frames)]
    cam = np.einsum("fij,fpj->fpi", rotation, model.points(identity, expression)) + translation[:, None]
    landmarks = project(cam) - 0.5 + rng.normal(0.0, noise_px, (frames, 68, 2))
    return landmarks, identity, expression, rotation, translation


def test_model_mean_is_the_preprocessing_face_and_bases_are_in_std_units(model):
    np.testing.assert_allclose(model.mean, landmark_model_68(), atol=1e-12)
    assert model.identity_basis.shape == (68, 3, 40) and model.expression_basis.shape == (68, 3, 10)
    # One prior std moves landmarks by millimetres to centimetres (BFM units are ~1 dm), never metres.
    for basis in (model.identity_basis, model.expression_basis):
        largest = np.abs(basis).max(axis=(0, 1))
        assert (largest > 1e-3).all() and (largest < 0.2).all()
    # The first expression component opens or closes the mouth: inner lips 63/67 move apart in y.
    lip_gap = model.expression_basis[66, 1, 0] - model.expression_basis[62, 1, 0]
    assert abs(lip_gap) > 0.02
    # points() is linear in both coefficient vectors.
    a, b = np.ones(40) * 0.3, np.ones(10) * -0.5
    np.testing.assert_allclose(model.points(a, b) - model.mean, (model.points(a, 0 * b) - model.mean) + (model.points(0 * a, b) - model.mean), atol=1e-12)
    np.testing.assert_allclose(extract_5p(model.mean)[:, 2].mean(), extract_5p(landmark_model_68())[:, 2].mean())


def test_skew_and_rotation_exp():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    np.testing.assert_allclose(skew(a) @ b[..., None], np.cross(a, b)[..., None], atol=1e-12)
    omega = rng.normal(size=(5, 3))
    rot = rotation_exp(omega)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, 1, 2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-12)
    np.testing.assert_allclose(rotation_angle_deg(rot, np.broadcast_to(np.eye(3), rot.shape)), np.degrees(np.linalg.norm(omega, axis=1) % (2 * np.pi)), atol=1e-6)
    # Rotation about the axis leaves the axis alone; zero vector -> identity.
    np.testing.assert_allclose(rot @ omega[..., None], omega[..., None], atol=1e-12)
    np.testing.assert_allclose(rotation_exp(np.zeros(3)), np.eye(3))


def test_jacobians_match_finite_differences(model):
    landmarks, identity, expression, rotation, translation = synthetic_sequence(model, 2, 0.0)
    problem = _Problem(model, landmarks + 0.5, FitSettings())
    _, points, cam = problem.residuals(identity, expression, rotation, translation)
    j_local, j_id = problem.jacobians(points, cam, rotation)
    eps = 1e-6

    def residual(omega=np.zeros(3), dt=np.zeros(3), dexpr=np.zeros(10), did=np.zeros(40)):
        rot = rotation_exp(np.broadcast_to(omega, (2, 3))) @ rotation
        return problem.residuals(identity + did, expression + dexpr, rot, translation + dt)[0].reshape(2, -1)

    base = residual()
    for k in range(3):
        step = np.zeros(3)
        step[k] = eps
        np.testing.assert_allclose((residual(omega=step) - base) / eps, j_local[:, :, k], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose((residual(dt=step) - base) / eps, j_local[:, :, 3 + k], rtol=1e-3, atol=1e-3)
    for k in (0, 4, 9):
        step = np.zeros(10)
        step[k] = eps
        np.testing.assert_allclose((residual(dexpr=step) - base) / eps, j_local[:, :, 6 + k], rtol=1e-3, atol=1e-3)
    for k in (0, 17, 39):
        step = np.zeros(40)
        step[k] = eps
        np.testing.assert_allclose((residual(did=step) - base) / eps, j_id[:, :, k], rtol=1e-3, atol=1e-3)


def test_noise_free_fit_recovers_everything_when_the_prior_is_weak(model):
    landmarks, identity, expression, rotation, translation = synthetic_sequence(model, 30, 0.0, seed=2)
    fit = fit_sequence(model, landmarks, FitSettings(identity_weight=1e-8, expression_weight=1e-8, iterations=30))
    assert fit.residual_px.max() < 1e-3
    np.testing.assert_allclose(fit.expression, expression, atol=2e-3)
    np.testing.assert_allclose(fit.identity, identity, atol=2e-3)
    assert rotation_angle_deg(fit.rotation, rotation).max() < 1e-3
    np.testing.assert_allclose(fit.translation, translation, atol=1e-3)


def test_noisy_fit_recovers_expressions_and_poses_within_stated_tolerances(model):
    """0.5 px landmark noise, 60 frames, yaw +-30 deg, default (unit) prior weights.

    Stated tolerances: head rotation within 1 degree on every frame; every
    expression component correlates > 0.9 with the truth and its RMS error is
    below 0.5 prior std (the prior shrinks the weakly observed components);
    the residual lies between 0.8 and 1.5 times the noise level (sqrt(2) *
    0.5 px per point; above it because the per-frame identity prior shrinks
    the true identity a little).
    """
    landmarks, identity, expression, rotation, translation = synthetic_sequence(model, 60, 0.5, seed=3)
    fit = fit_sequence(model, landmarks)
    assert rotation_angle_deg(fit.rotation, rotation).max() < 1.0
    for k in range(N_EXPRESSION):
        assert np.corrcoef(fit.expression[:, k], expression[:, k])[0, 1] > 0.9, k
    assert np.sqrt(((fit.expression - expression) ** 2).mean(axis=0)).max() < 0.5
    noise_level = np.sqrt(2) * 0.5
    assert 0.8 * noise_level < fit.residual_px.mean() < 1.5 * noise_level
    # Levenberg-Marquardt never increases the cost.
    assert all(b <= a for a, b in zip(fit.cost_history, fit.cost_history[1:]))
    assert fit.cost_history[-1] < 0.1 * fit.cost_history[0]


def test_pose_only_refinement_with_known_shape(model):
    landmarks, identity, expression, rotation, translation = synthetic_sequence(model, 10, 0.0, seed=4)
    start = (rotation_exp(np.full((10, 3), 0.05)) @ rotation, translation + 0.2)
    fit = fit_sequence(model, landmarks, FitSettings(iterations=20), initial=start, fixed_identity=identity, fixed_expression=expression)
    assert rotation_angle_deg(fit.rotation, rotation).max() < 1e-4
    np.testing.assert_array_equal(fit.expression, expression)
    np.testing.assert_array_equal(fit.identity, identity)


def test_bad_landmark_shape_is_rejected(model):
    with pytest.raises(ValueError, match=r"\(F, 68, 2\)"):
        fit_sequence(model, np.zeros((3, 5, 2)))
