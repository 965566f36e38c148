"""Joint fit of a sparse morphable model to a landmark sequence (pure numpy).

Unknowns: one identity vector shared by every frame, and per frame a rigid
pose (rotation, translation: ``X_cam = R X_bfm + t``, OpenCV camera) and an
expression vector. Observations: the 68 landmarks in the 512 EG3D crop, seen
through the crop's own pinhole camera (f = 4.2647 * 512, centre 256), i.e. the
camera of ``cameras.parquet``. The cost is the MAP objective

    sum_f sum_p w_p |proj(R_f X_p(identity, expr_f) + t_f) - x_fp|^2 / noise_px^2
        + F identity_weight |identity|^2 + expression_weight sum_f |expr_f|^2

with coefficients in prior standard deviations (:mod:`hfagp.face3d.morphable`), so
the weights are 1 for the model's own Gaussian prior. The identity prior is
counted once per frame (factor F): tracking errors are correlated over time
(the same landmark-definition offsets in every frame), so F frames are far
fewer than F independent observations of the face shape, and without it a
long video lets the identity absorb those offsets (on the demo: coefficients
of 15 std and a 30% larger face). It is minimised with
Gauss-Newton/Levenberg-Marquardt over all unknowns at once: the normal
equations have one small block per frame plus the shared identity block, and
the shared block is solved by its Schur complement, so a step costs O(F).
Everything is vectorised over frames.

Jaw contour points (iBUG 1-17) slide along the silhouette in image space while
the model's contour vertices are fixed, so they get a lower weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hfagp.eg3d import camera
from hfagp.face3d import geometry as geo
from hfagp.face3d.morphable import SparseMorphableModel

# Assumed landmark noise in pixels of the 512 crop (sets the data/prior balance).
NOISE_PX = 2.0
CONTOUR_WEIGHT = 0.5
_DAMPING = 1e-3
_TOLERANCE = 1e-7


@dataclass(frozen=True)
class FitSettings:
    """Weights and iteration counts of :func:`fit_sequence`."""

    identity_weight: float = 1.0
    expression_weight: float = 1.0
    iterations: int = 8
    noise_px: float = NOISE_PX
    contour_weight: float = CONTOUR_WEIGHT
    image_size: int = geo.OUTPUT_SIZE


@dataclass
class SequenceFit:
    """Result of :func:`fit_sequence` (F frames)."""

    identity: np.ndarray  # (N_ID,)
    expression: np.ndarray  # (F, N_EXP)
    rotation: np.ndarray  # (F, 3, 3) BFM -> OpenCV camera
    translation: np.ndarray  # (F, 3)
    residual_px: np.ndarray  # (F,) RMS reprojection error over the 68 points, pixels
    cost_history: list[float]  # total cost after each iteration (the first entry: start)


def landmark_weights(contour_weight: float = CONTOUR_WEIGHT) -> np.ndarray:
    """Per-landmark weights (68,): ``contour_weight`` on the jaw line, 1 elsewhere."""
    weights = np.ones(68)
    weights[:17] = contour_weight
    return weights


def skew(vectors: np.ndarray) -> np.ndarray:
    """Cross-product matrices (..., 3, 3) of (..., 3) vectors: ``skew(a) @ b == cross(a, b)``."""
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    zero = np.zeros_like(x)
    return np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)


def rotation_exp(omega: np.ndarray) -> np.ndarray:
    """Rodrigues: rotation matrices (..., 3, 3) of rotation vectors (..., 3)."""
    theta = np.linalg.norm(omega, axis=-1, keepdims=True)[..., None]
    k = skew(omega) / np.maximum(theta, 1e-12)
    small = theta < 1e-12
    eye = np.broadcast_to(np.eye(3), k.shape)
    rot = eye + np.sin(theta) * k + (1.0 - np.cos(theta)) * (k @ k)
    return np.where(small, eye + skew(omega), rot)


def project(points_cam: np.ndarray, image_size: int = geo.OUTPUT_SIZE) -> np.ndarray:
    """Pinhole projection (..., 3) camera points -> (..., 2) continuous pixel coordinates of the crop."""
    focal = camera.FOCAL_NORMALISED * image_size
    return focal * points_cam[..., :2] / points_cam[..., 2:3] + image_size / 2.0


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angle (degrees) between rotations (..., 3, 3)."""
    trace = np.einsum("...ii->...", np.swapaxes(a, -1, -2) @ b)
    return np.degrees(np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0)))


class _Problem:
    """Residuals and Jacobians of the fit cost for a set of frames."""

    def __init__(self, model: SparseMorphableModel, targets: np.ndarray, settings: FitSettings):
        self.model = model
        self.targets = targets  # (F, 68, 2) continuous pixel coordinates
        self.settings = settings
        self.sqrt_w = np.sqrt(landmark_weights(settings.contour_weight))[None, :, None] / settings.noise_px

    def residuals(self, identity, expression, rotation, translation):
        points = self.model.points(identity, expression)  # (F, 68, 3)
        cam = np.einsum("fij,fpj->fpi", rotation, points) + translation[:, None, :]
        return (project(cam, self.settings.image_size) - self.targets) * self.sqrt_w, points, cam

    def cost(self, identity, expression, rotation, translation) -> float:
        r = self.residuals(identity, expression, rotation, translation)[0]
        s = self.settings
        identity_weight = s.identity_weight * len(self.targets)
        return float((r**2).sum() + identity_weight * (identity**2).sum() + s.expression_weight * (expression**2).sum())

    def jacobians(self, points, cam, rotation):
        """d residual / d (omega, t, expression) per frame (F, 136, 6 + N_EXP) and d / d identity (F, 136, N_ID)."""
        focal = camera.FOCAL_NORMALISED * self.settings.image_size
        inv_z = 1.0 / cam[..., 2]
        d_proj = np.zeros(cam.shape[:-1] + (2, 3))
        d_proj[..., 0, 0] = focal * inv_z
        d_proj[..., 1, 1] = focal * inv_z
        d_proj[..., 0, 2] = -focal * cam[..., 0] * inv_z**2
        d_proj[..., 1, 2] = -focal * cam[..., 1] * inv_z**2
        d_proj = d_proj * self.sqrt_w[..., None]  # (F, 68, 2, 3)
        # Left-multiplied update R <- exp(omega) R: d(R X)/d omega = -skew(R X).
        d_omega = -skew(np.einsum("fij,fpj->fpi", rotation, points))  # (F, 68, 3, 3)
        d_expr = np.einsum("fij,pjk->fpik", rotation, self.model.expression_basis)
        d_id = np.einsum("fij,pjk->fpik", rotation, self.model.identity_basis)
        eye = np.broadcast_to(np.eye(3), d_omega.shape)
        local = np.concatenate([d_omega, eye, d_expr], axis=-1)  # (F, 68, 3, 6+E)
        j_local = np.einsum("fpab,fpbk->fpak", d_proj, local).reshape(len(cam), -1, local.shape[-1])
        j_id = np.einsum("fpab,fpbk->fpak", d_proj, d_id).reshape(len(cam), -1, d_id.shape[-1])
        return j_local, j_id


def initial_poses(model: SparseMorphableModel, landmarks_crop: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Rigid poses of the mean face from the inner 51 landmarks (the align stage's solve)."""
    from hfagp.face3d.face_model import INNER_51

    rotations, translations = [], []
    for points in landmarks_crop:
        pose = geo.solve_head_pose(points[INNER_51], model.mean[INNER_51], size=image_size)
        rotations.append(pose.rotation)
        translations.append(pose.translation)
    return np.array(rotations), np.array(translations)


def fit_sequence(
    model: SparseMorphableModel,
    landmarks_crop: np.ndarray,
    settings: FitSettings = FitSettings(),
    initial: tuple[np.ndarray, np.ndarray] | None = None,
    fixed_identity: np.ndarray | None = None,
    fixed_expression: np.ndarray | None = None,
) -> SequenceFit:
    """Fit identity, per-frame pose and expression to (F, 68, 2) crop landmarks (pixel indices).

    ``initial`` = (rotations (F,3,3), translations (F,3)) starts the poses
    (default: the rigid mean-face solve). ``fixed_identity`` (N_ID,) and
    ``fixed_expression`` (F, N_EXP) hold those unknowns; with both, only the
    poses are refined.
    """
    landmarks_crop = np.asarray(landmarks_crop, dtype=np.float64)
    if landmarks_crop.ndim != 3 or landmarks_crop.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (F, 68, 2), got {landmarks_crop.shape}")
    n_frames = len(landmarks_crop)
    problem = _Problem(model, landmarks_crop + 0.5, settings)
    rotation, translation = initial if initial is not None else initial_poses(model, landmarks_crop, settings.image_size)
    rotation, translation = rotation.copy(), translation.copy()
    identity = np.zeros(model.n_identity) if fixed_identity is None else np.asarray(fixed_identity, dtype=np.float64)
    if fixed_expression is None:
        expression = np.zeros((n_frames, model.n_expression))
        n_local = 6 + model.n_expression
    else:
        expression = np.asarray(fixed_expression, dtype=np.float64).reshape(n_frames, model.n_expression)
        n_local = 6
    local_prior = np.zeros(n_local)
    local_prior[6:] = settings.expression_weight
    identity_weight = settings.identity_weight * n_frames  # see the module docstring

    history = [problem.cost(identity, expression, rotation, translation)]
    damping = _DAMPING
    for _ in range(settings.iterations):
        r, points, cam = problem.residuals(identity, expression, rotation, translation)
        r = r.reshape(n_frames, -1)
        j_local, j_id = problem.jacobians(points, cam, rotation)
        j_local = j_local[..., :n_local]
        # Normal equations: per-frame blocks A (F,L,L), coupling B (F,L,I), shared block C (I,I).
        j_local_t = np.swapaxes(j_local, 1, 2)
        a = j_local_t @ j_local + np.diag(local_prior)  # matmul: BLAS, unlike einsum
        g_local = (j_local_t @ r[..., None])[..., 0]
        if n_local > 6:
            g_local[:, 6:] += settings.expression_weight * expression
        a = a + damping * np.diag(np.maximum(np.diagonal(a, axis1=1, axis2=2).mean(axis=0), 1e-9))
        if fixed_identity is None:
            b = j_local_t @ j_id
            j_id_flat = j_id.reshape(-1, model.n_identity)
            c = j_id_flat.T @ j_id_flat + identity_weight * np.eye(model.n_identity)
            c = c + damping * np.diag(np.diagonal(c))
            g_id = j_id_flat.T @ r.reshape(-1) + identity_weight * identity
            a_inv_b = np.linalg.solve(a, b)
            a_inv_g = np.linalg.solve(a, g_local[..., None])[..., 0]
            flat_b = b.reshape(-1, model.n_identity)  # (F*L, I): sum over frames as one product
            schur = c - flat_b.T @ a_inv_b.reshape(-1, model.n_identity)
            delta_id = np.linalg.solve(schur, -(g_id - np.einsum("fli,fl->i", b, a_inv_g)))
            delta_local = -(a_inv_g + np.einsum("fli,i->fl", a_inv_b, delta_id))
        else:
            delta_id = np.zeros(model.n_identity)
            delta_local = -np.linalg.solve(a, g_local[..., None])[..., 0]
        new_rotation = rotation_exp(delta_local[:, :3]) @ rotation
        new_translation = translation + delta_local[:, 3:6]
        new_expression = expression + delta_local[:, 6:] if n_local > 6 else expression
        new_identity = identity + delta_id
        new_cost = problem.cost(new_identity, new_expression, new_rotation, new_translation)
        if new_cost <= history[-1]:
            identity, expression, rotation, translation = new_identity, new_expression, new_rotation, new_translation
            history.append(new_cost)
            damping = max(damping / 3.0, 1e-6)
            if history[-2] - new_cost <= _TOLERANCE * history[-2]:
                break  # converged: Gauss-Newton needs only a few steps here
        else:  # Levenberg-Marquardt: reject the step and damp harder
            history.append(history[-1])
            damping *= 10.0

    cam = problem.residuals(identity, expression, rotation, translation)[2]
    error = project(cam, settings.image_size) - problem.targets
    residual = np.sqrt((error**2).sum(axis=-1).mean(axis=-1))
    return SequenceFit(identity, expression, rotation, translation, residual, history)
