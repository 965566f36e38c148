"""Stage ``expressions``: per-frame expression coefficients of a morphable model fitted to the landmarks.

The 3DMM driving signal of the expression avatar. The sparse 3DDFA/BFM model
(:mod:`hfagp.face3d.morphable`: 40 identity and 10 expression components, in prior
standard deviations) is fitted to the 68 landmarks of every tracked frame in
the 512 crop, with one identity shared by the whole video and a rigid pose
per frame, all jointly (:mod:`hfagp.face3d.fit`). The pose starts from
the align stage's rigid solve in the same crop camera; ``pose_difference``
reports how far the joint fit moved it (``cameras.parquet`` keeps the rigid
camera; the test suite checks they agree within a few degrees).

The expression coefficients are then smoothed in time (Gaussian, within runs
of consecutive frames) and the poses refined once more for the smoothed
coefficients, so that ``fit_residual`` describes what is written.

Output ``expressions.parquet`` (see :mod:`hfagp.io.tables`): ``frame``, ``flag``,
``expression`` (10 floats), ``fit_residual`` (RMS px over the 68 points in the
512 crop: large values flag bad tracking), ``pitch``/``yaw``/``roll`` (deg) and
``translation`` (3) of the fitted pose, ``pose_difference`` (deg, geodesic
angle to the camera of ``cameras.parquet``); metadata: model ``3ddfa-bfm68``,
the shared ``identity`` (40), the fit settings. ``qc/expressions.png`` shows
the fitted sparse shape over a few frames and the coefficients over time.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from hfagp.errors import HfagpError
from hfagp.logs import get_logger

log = get_logger("expressions")

# Frames whose residual exceeds this many times the median are called out in the log.
_OUTLIER_FACTOR = 3.0


def smooth_over_runs(values: np.ndarray, frames: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smooth (F, K) ``values`` in time within runs of consecutive frame numbers."""
    from hfagp.preprocess.landmarks import smooth_tracks

    frames = np.asarray(frames, dtype=np.int64)
    if sigma <= 0 or len(frames) == 0:
        return values.copy()
    dense = np.zeros((frames.max() - frames.min() + 1,) + values.shape[1:])
    valid = np.zeros(len(dense), dtype=bool)
    dense[frames - frames.min()] = values
    valid[frames - frames.min()] = True
    return smooth_tracks(dense, valid, sigma)[frames - frames.min()]


def fit_expressions(cameras: pd.DataFrame, labels: np.ndarray, settings, smoothing_sigma: float) -> tuple[pd.DataFrame, dict]:
    """Fit the model to the crop landmarks of ``cameras.parquet``; returns the table and its metadata."""
    from hfagp.face3d import geometry as geo
    from hfagp.face3d.fit import fit_sequence, rotation_angle_deg
    from hfagp.face3d.morphable import sparse_model

    model = sparse_model()
    landmarks = np.stack(cameras.landmarks_crop.to_numpy()).reshape(-1, 68, 2).astype(np.float64)
    if not np.isfinite(landmarks).all():
        raise HfagpError("cameras.parquet has no crop landmarks for some frames (imported cameras?); "
                         "run the landmarks + align stages on the frames to fit expressions")
    joint = fit_sequence(model, landmarks, settings)
    expression = smooth_over_runs(joint.expression, cameras.frame.to_numpy(), smoothing_sigma)
    # Poses for the smoothed coefficients (identity and expressions held), so residuals describe the output.
    refined = fit_sequence(
        model,
        landmarks,
        settings,
        initial=(joint.rotation, joint.translation),
        fixed_identity=joint.identity,
        fixed_expression=expression,
    )
    camera_rotation = np.transpose(labels[:, :16].reshape(-1, 4, 4)[:, :3, :3], (0, 2, 1))
    euler = np.array([geo.euler_from_rotation(r) for r in refined.rotation])
    table = pd.DataFrame(
        {
            "frame": cameras.frame.to_numpy().astype(np.int64),
            "flag": cameras.flag.to_numpy(),
            "expression": list(expression),
            "fit_residual": refined.residual_px,
            "pitch": euler[:, 0],
            "yaw": euler[:, 1],
            "roll": euler[:, 2],
            "translation": list(refined.translation),
            "pose_difference": rotation_angle_deg(refined.rotation, camera_rotation),
        }
    )
    metadata = {
        "model": model.name,
        "units": "prior standard deviations (3DDFA param_std)",
        "identity": [float(v) for v in joint.identity],
        "settings": {**asdict(settings), "smoothing_sigma": smoothing_sigma},
        "cost_history": [float(c) for c in joint.cost_history],
    }
    return table, metadata


def run_expressions(cameras_path, output, settings, smoothing_sigma: float = 1.0, qc_path=None, crops_dir=None, qc_frames: int = 8):
    """The whole stage: fit, write ``expressions.parquet`` (and the QC image)."""
    from hfagp.io.tables import read_cameras, write_expressions

    cameras, labels = read_cameras(cameras_path)
    if len(cameras) == 0:
        raise HfagpError(f"{cameras_path} has no frames; check the landmarks and align stages")
    table, metadata = fit_expressions(cameras, labels, settings, smoothing_sigma)
    write_expressions(output, table, metadata)
    residual = table.fit_residual.to_numpy()
    outliers = table.frame[residual > _OUTLIER_FACTOR * np.median(residual)].tolist()
    log.info(
        "fitted %d frames: residual median %.2f px (max %.2f), pose difference to cameras median %.2f deg (max %.2f)",
        len(table),
        np.median(residual),
        residual.max(),
        table.pose_difference.median(),
        table.pose_difference.max(),
    )
    if outliers:
        log.warning("frames with a fit residual over %.0fx the median (check their tracking): %s", _OUTLIER_FACTOR, outliers[:20])
    if qc_path is not None:
        from hfagp.expressions.qc import write_expressions_qc

        write_expressions_qc(qc_path, crops_dir, cameras, table, metadata, qc_frames)
    return table, metadata
