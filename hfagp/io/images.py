"""Images on disk: numbered PNG frames, RGB reading and writing, captioned tile sheets.

Frames and crops are ``%06d.png`` files (:data:`FRAME_NAME`) of RGB uint8
pixels, written losslessly. The QC sheets and training sample grids are rows
of :data:`TILE`-pixel tiles with a small caption.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hfagp.errors import HfagpError
from hfagp.io import atomic

FRAME_NAME = "{:06d}.png"
TILE = 128


def frame_path(frames_dir: str | Path, index: int) -> Path:
    """Path of frame ``index`` inside a frames directory."""
    return Path(frames_dir) / FRAME_NAME.format(index)


def write_rgb(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG (fast compression; lossless either way)."""
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise HfagpError(f"could not write image {path}; is the disk full or the folder missing?")


def read_rgb(path: str | Path) -> np.ndarray:
    """Read a PNG as RGB uint8, with a clear error for a missing or unreadable file."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise HfagpError(f"cannot read image {path}; rerun the stage that wrote it")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def caption(tile: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` (white on a black outline) into the top-left corner of ``tile``, in place."""
    cv2.putText(tile, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(tile, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def fit_tile(image: np.ndarray) -> np.ndarray:
    """``image`` resized to a TILE x TILE tile (area filter when shrinking)."""
    return cv2.resize(image, (TILE, TILE), interpolation=cv2.INTER_AREA if image.shape[0] > TILE else cv2.INTER_LINEAR)


def tile_grid(rows: list[list], groups_per_row: int = 2) -> np.ndarray:
    """Lay out rows of equally sized tiles, ``groups_per_row`` rows side by side (uint8 RGB)."""
    width = max(len(r) for r in rows)
    lines = -(-len(rows) // groups_per_row)
    sheet = np.zeros((lines * TILE, groups_per_row * width * TILE + (groups_per_row - 1) * 4, 3), dtype=np.uint8)
    for i, row in enumerate(rows):
        line, group = divmod(i, groups_per_row)
        x0 = group * (width * TILE + 4)
        for j, tile in enumerate(row):
            sheet[line * TILE : (line + 1) * TILE, x0 + j * TILE : x0 + (j + 1) * TILE] = tile
    return sheet


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Atomically write an RGB uint8 image as PNG (a sheet or a sample grid)."""
    with atomic.atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise HfagpError(f"could not write image {path}")
