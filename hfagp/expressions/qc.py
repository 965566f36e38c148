"""QC image of the expression fit: ``qc/expressions.png``.

Top: a few evenly spaced crops with the tracked landmarks (green dots) and the
fitted sparse shape (red, drawn as the iBUG contours) projected through the
fitted pose; the caption gives the frame, fit residual and the first
coefficients. Bottom: the first expression coefficients (colours) and the
inner-lip opening of the landmarks (white, rescaled) over the whole video,
so one sees at a glance whether the coefficients follow the mouth.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from hfagp.io import atomic
from hfagp.io.images import read_rgb
from hfagp.preprocess.qc import TILE, contact_sheet

# iBUG 68 contours (0-based, inclusive ranges) and whether each is closed.
_CONTOURS = [(0, 16, False), (17, 21, False), (22, 26, False), (27, 30, False), (31, 35, False),
             (36, 41, True), (42, 47, True), (48, 59, True), (60, 67, True)]
_COLOURS = [(255, 99, 71), (65, 105, 225), (50, 205, 50), (238, 130, 238)]
PLOT_HEIGHT = 160


def fitted_points_crop(table_row: pd.Series, identity: np.ndarray) -> np.ndarray:
    """Project the fitted 68 model points of one row into crop pixel indices (68, 2)."""
    from hfagp.face3d import geometry as geo
    from hfagp.face3d.fit import project
    from hfagp.face3d.morphable import sparse_model

    rotation = geo.rotation_from_euler(table_row.pitch, table_row.yaw, table_row.roll)
    points = sparse_model().points(identity, np.asarray(table_row.expression))
    cam = points @ rotation.T + np.asarray(table_row.translation)
    return project(cam) - 0.5


def _tile(crop: np.ndarray, tracked: np.ndarray, fitted: np.ndarray, caption: str) -> np.ndarray:
    scale = TILE / crop.shape[0]
    tile = cv2.resize(crop, (TILE, TILE), interpolation=cv2.INTER_AREA).copy()

    def to_tile(points: np.ndarray) -> np.ndarray:
        return np.round((points + 0.5) * scale - 0.5).astype(np.int32)

    fitted_tile = to_tile(fitted)
    for start, end, closed in _CONTOURS:
        cv2.polylines(tile, [fitted_tile[start : end + 1]], closed, (255, 40, 40), 1, cv2.LINE_AA)
    for x, y in to_tile(tracked):
        cv2.circle(tile, (int(x), int(y)), 1, (40, 255, 40), -1, cv2.LINE_AA)
    cv2.putText(tile, caption, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _plot(width: int, frames: np.ndarray, series: list[np.ndarray], lip: np.ndarray) -> np.ndarray:
    """Line plot of coefficient series (shared scale) and the lip opening (own scale)."""
    plot = np.zeros((PLOT_HEIGHT, width, 3), dtype=np.uint8)
    x = np.interp(frames, [frames.min(), max(frames.max(), frames.min() + 1)], [8, width - 8])
    bound = max(1e-6, max(float(np.abs(s).max()) for s in series))

    def to_y(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
        return np.interp(values, [lo, hi], [PLOT_HEIGHT - 14, 14])

    cv2.line(plot, (0, PLOT_HEIGHT // 2), (width, PLOT_HEIGHT // 2), (70, 70, 70), 1)
    lip_y = to_y(lip, lip.min(), max(lip.max(), lip.min() + 1e-6))
    cv2.polylines(plot, [np.c_[x, lip_y].astype(np.int32)], False, (255, 255, 255), 1, cv2.LINE_AA)
    for k, (values, colour) in enumerate(zip(series, _COLOURS)):
        cv2.polylines(plot, [np.c_[x, to_y(values, -bound, bound)].astype(np.int32)], False, colour, 1, cv2.LINE_AA)
        cv2.putText(plot, f"expr {k}", (8 + 60 * k, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1, cv2.LINE_AA)
    cv2.putText(plot, "lip opening", (8 + 60 * len(series), 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1)
    return plot


def write_expressions_qc(
    output: str | Path, crops_dir: str | Path, cameras: pd.DataFrame, table: pd.DataFrame, metadata: dict, count: int = 8
) -> np.ndarray:
    """Write the QC image; returns it (RGB)."""
    identity = np.asarray(metadata["identity"])
    rows = np.unique(np.linspace(0, len(table) - 1, num=min(count, len(table))).round().astype(int))
    tiles = []
    for row in rows:
        record, camera = table.iloc[row], cameras.iloc[row]
        crop = read_rgb(Path(crops_dir) / camera["name"])
        tracked = np.asarray(camera.landmarks_crop).reshape(68, 2)
        coefficients = " ".join(f"{v:+.1f}" for v in np.asarray(record.expression)[:3])
        caption = f"#{record.frame} {record.fit_residual:.1f}px {coefficients}"
        tiles.append(_tile(crop, tracked, fitted_points_crop(record, identity), caption))
    sheet = contact_sheet(tiles)
    landmarks = np.stack(cameras.landmarks_crop.to_numpy()).reshape(-1, 68, 2)
    lip = np.linalg.norm(landmarks[:, 66] - landmarks[:, 62], axis=-1)
    coefficients = np.stack(table.expression.to_numpy())
    plot = _plot(sheet.shape[1], table.frame.to_numpy(), [coefficients[:, k] for k in range(min(4, coefficients.shape[1]))], lip)
    image = np.concatenate([sheet, plot], axis=0)
    with atomic.atomic_path(output) as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return image
