"""Stage ``qc``: a contact sheet that shows at a glance whether tracking worked.

For a few evenly spaced frames it draws, on each 512 crop (shown at 256 px):
the tracked landmarks (green), the 3D landmark model projected through the
frame's camera label (red: what EG3D will see; it should sit on the green
points), the world axes at the camera pivot (x red, y green, z blue), and the
frame number with yaw/pitch/roll. Written to ``qc/landmarks.png``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hfagp.eg3d import camera
from hfagp.face3d import geometry as geo
from hfagp.face3d.face_model import landmark_model_68
from hfagp.io import atomic
from hfagp.io.images import read_rgb
from hfagp.io.tables import read_cameras

TILE = 256


def draw_tile(crop: np.ndarray, landmarks_crop: np.ndarray, label: np.ndarray, caption: str) -> np.ndarray:
    """One annotated tile (TILE x TILE RGB) from a 512 crop."""
    scale = TILE / crop.shape[0]
    tile = cv2.resize(crop, (TILE, TILE), interpolation=cv2.INTER_AREA).copy()

    def to_tile(points: np.ndarray) -> np.ndarray:
        return np.round((points + 0.5) * scale - 0.5).astype(int)

    model = camera.project_with_label(label, geo.bfm_to_world(landmark_model_68()), crop.shape[0])
    for x, y in to_tile(model):
        cv2.circle(tile, (int(x), int(y)), 2, (255, 40, 40), -1, cv2.LINE_AA)
    # Imported cameras (HFA-GP folders) have no crop landmarks (NaN): only the model is drawn.
    for x, y in to_tile(landmarks_crop[np.isfinite(landmarks_crop).all(axis=1)]):
        cv2.circle(tile, (int(x), int(y)), 1, (40, 255, 40), -1, cv2.LINE_AA)
    axes = camera.CAMERA_PIVOT + np.array([[0, 0, 0], [0.3, 0, 0], [0, 0.3, 0], [0, 0, 0.3]])
    origin, *ends = to_tile(camera.project_with_label(label, axes, crop.shape[0]))
    for end, colour in zip(ends, [(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        cv2.line(tile, tuple(int(v) for v in origin), tuple(int(v) for v in end), colour, 2, cv2.LINE_AA)
    cv2.putText(tile, caption, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def contact_sheet(tiles: list[np.ndarray], columns: int = 4) -> np.ndarray:
    """Arrange equally sized tiles in a grid (missing cells black)."""
    rows = -(-len(tiles) // columns)
    sheet = np.zeros((rows * TILE, columns * TILE, 3), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = tile
    return sheet


def run_qc(crops_dir: str | Path, cameras_path: str | Path, output: str | Path, count: int = 12) -> np.ndarray:
    """Write the contact sheet of ``count`` evenly spaced aligned frames."""
    table, labels = read_cameras(cameras_path)
    rows = np.unique(np.linspace(0, len(table) - 1, num=min(count, len(table))).round().astype(int))
    tiles = []
    for row in rows:
        record = table.iloc[row]
        crop = read_rgb(Path(crops_dir) / record["name"])
        landmarks_crop = np.asarray(record.landmarks_crop).reshape(68, 2)
        caption = f"#{record.frame} y{record.yaw:+.0f} p{record.pitch:+.0f} r{record.roll:+.0f} {record.flag}"
        tiles.append(draw_tile(crop, landmarks_crop, labels[row], caption))
    sheet = contact_sheet(tiles)
    with atomic.atomic_path(output) as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return sheet
